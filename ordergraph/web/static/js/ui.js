// DOM helpers (elements, icons, list states, busy buttons, form fields), initials, random keys.

/**
 * h('button', { class: 'btn', onclick: fn, disabled: true }, 'Text', child, [more])
 * Attributes: on* -> listeners; class/className; dataset {}; style {}; boolean false/null
 * drops the attribute; `text` sets textContent; everything else is setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class' || key === 'className') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith('--')) el.style.setProperty(prop, v);
        else el.style[prop] = v;
      }
    } else if (key === 'text') {
      el.textContent = value;
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function svgIcon(path, size = 16) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', size);
  svg.setAttribute('height', size);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', path);
  p.setAttribute('fill', 'none');
  p.setAttribute('stroke', 'currentColor');
  p.setAttribute('stroke-width', '2');
  p.setAttribute('stroke-linecap', 'round');
  p.setAttribute('stroke-linejoin', 'round');
  svg.append(p);
  return svg;
}

export const ICONS = {
  search: 'M11 19a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm10 2-4.35-4.35',
  lock: 'M6 11h12v10H6zM8 11V7a4 4 0 0 1 8 0v4',
  clock: 'M12 21a9 9 0 1 1 0-18 9 9 0 0 1 0 18zm0-14v5l3 2',
  alert: 'M12 9v4m0 4h.01M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z',
  external: 'M14 3h7v7m0-7L10 14M19 14v5a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2h5',
  close: 'M6 6l12 12M18 6 6 18',
};

// ---- list states ------------------------------------------------------------------------

export function loadingState(label = 'Loading…') {
  return h('div', { class: 'state state-loading', role: 'status' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), label);
}

export function emptyState(title, hint, action) {
  return h('div', { class: 'state state-empty' },
    h('h2', {}, title), hint ? h('p', {}, hint) : null, action || null);
}

export function errorState(what, error, retry) {
  return h('div', { class: 'state state-error', role: 'alert' },
    h('h2', {}, `Couldn't load ${what}`),
    h('p', {}, error && error.message ? error.message : 'Something went wrong.'),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again') : null);
}

/** Put a button in its busy state (spinner, disabled, aria-busy) and back. */
export function setBusy(button, busy, busyLabel) {
  if (busy) {
    if (button.dataset.idleLabel === undefined) button.dataset.idleLabel = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    fill(button, h('span', { class: 'spinner', 'aria-hidden': 'true' }), busyLabel || button.dataset.idleLabel);
  } else {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (button.dataset.idleLabel !== undefined) button.textContent = button.dataset.idleLabel;
    delete button.dataset.idleLabel;
  }
}

/** Mark a form field invalid with a message under it (message '' clears). */
export function fieldError(input, errorEl, message) {
  if (message) {
    input.setAttribute('aria-invalid', 'true');
    errorEl.textContent = message;
  } else {
    input.removeAttribute('aria-invalid');
    errorEl.textContent = '';
  }
}

let uid = 0;
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field: returns { wrap, input, error }. The error element is linked with
 * aria-describedby so screen readers read it with the field.
 */
export function formField({ label, name, type = 'text', value = '', hint, attrs = {}, textarea = false }) {
  const id = nextId(name);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h(textarea ? 'textarea' : 'input', {
    id, name, class: 'input', ...(textarea ? {} : { type }),
    'aria-describedby': [hintId, errorId].filter(Boolean).join(' '), ...attrs,
  });
  if (value !== undefined && value !== null) input.value = value;
  const error = h('div', { class: 'field-error', id: errorId, 'aria-live': 'polite' });
  const wrap = h('div', { class: 'field' },
    h('label', { for: id }, label), input,
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null, error);
  return { wrap, input, error };
}

/** Unicode-safe initials for product art. */
export function initials(name) {
  return String(name).split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

/** Random id for idempotency keys. */
export function randomKey() {
  if (window.isSecureContext && crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
