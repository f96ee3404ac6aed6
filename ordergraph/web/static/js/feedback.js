// Telling the user: screen-reader announcements, toasts, the banner, confirmation dialogs.

import { h } from './ui.js';

// ---- announcements, toasts, banner ------------------------------------------------------

/** Say something to screen readers (polite). */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after a tick is announced even when the text repeats.
  setTimeout(() => { region.textContent = text; }, 50);
}

export function toast(message, { kind = 'info', timeout = 5000 } = {}) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: 'toast', dataset: { kind }, role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, message));
  const close = () => item.remove();
  item.append(h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: close }, '×'));
  region.append(item);
  while (region.children.length > 4) region.firstElementChild.remove();
  if (timeout) setTimeout(close, timeout);
}

export function banner(message, kind = 'warning') {
  const el = document.getElementById('banner');
  if (!el) return;
  if (!message) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.dataset.kind = kind;
  el.textContent = message;
  el.hidden = false;
}

// ---- dialogs ----------------------------------------------------------------------------

/** A modal confirmation. Resolves true (confirmed) or false (cancelled, Escape). */
export function confirmDialog({ title, body, confirm = 'Confirm', cancel = 'Keep it', danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    let result = false;
    const ok = h('button', { type: 'submit', class: danger ? 'btn btn-danger-solid' : 'btn btn-primary', value: 'ok' }, confirm);
    const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'confirm' },
      h('form', { method: 'dialog' },
        h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title)),
        body ? h('div', { class: 'dialog-body' }, body) : null,
        h('div', { class: 'dialog-foot' },
          h('button', { type: 'submit', class: 'btn', value: 'cancel' }, cancel),
          ok)));
    dialog.addEventListener('close', () => {
      result = dialog.returnValue === 'ok';
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}
