// Shared by #/login and #/register: a short form whose errors come from the API's `field`.

import { query } from '../api.js';
import { toast } from '../feedback.js';
import { session } from '../session.js';
import { fieldError, fill, formField, h, setBusy } from '../ui.js';

/** Where to go after logging in: ?next=/checkout (only paths inside the app). */
export function nextPath(params) {
  const next = params.get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

/**
 * fields: [{ name, label, type, autocomplete, hint }]; submit(values) -> { document, variables, key }.
 */
export function authForm(root, { scope, query: params, navigate }, { heading, sub, fields, submitLabel,
  busyLabel, build, resultKey, alt, extra, welcome }) {
  const flash = session.takeFlash() || (params.get('expired') ? 'Your session has expired. Log in again to continue.' : null);
  const inputs = {};
  const formError = h('div', { class: 'form-error', role: 'alert' });
  const note = flash ? h('div', { class: 'form-note', role: 'status' }, flash) : null;
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-lg btn-block' }, submitLabel);
  const form = h('form', { class: 'form', novalidate: true }, note, formError);
  for (const spec of fields) {
    const field = formField({ label: spec.label, name: spec.name, type: spec.type || 'text', hint: spec.hint,
      attrs: { autocomplete: spec.autocomplete, required: spec.required !== false } });
    inputs[spec.name] = field;
    form.append(field.wrap);
  }
  form.append(button);
  if (extra) form.append(extra);
  const next = nextPath(params);
  const suffix = next !== '/' ? `?next=${encodeURIComponent(next)}` : '';
  fill(root, h('div', { class: 'auth' },
    h('h1', {}, heading),
    h('p', { class: 'sub' }, next === '/checkout' ? 'Log in to check out; your cart is kept.' : sub),
    h('div', { class: 'card' }, h('div', { class: 'card-body' }, form)),
    h('p', { class: 'alt' }, alt.text, ' ', h('a', { href: `#${alt.path}${suffix}` }, alt.link)),
    alt.demo ? h('p', { class: 'demo' }, alt.demo) : null));

  let busy = false;
  function clearErrors() {
    formError.textContent = '';
    for (const field of Object.values(inputs)) fieldError(field.input, field.error, '');
  }

  function show(result) {
    const target = result.field && inputs[result.field.split('.')[0]];
    let message = result.message;
    if (result.__typename === 'RateLimitedError') {
      message = `Too many attempts. Try again in ${result.retryAfterSeconds} s.`;
    }
    if (target) {
      fieldError(target.input, target.error, message);
      target.input.focus();
    } else {
      formError.textContent = message;
    }
  }

  scope.listen(form, 'submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    const values = Object.fromEntries(Object.entries(inputs).map(([name, f]) =>
      [name, f.input.type === 'password' ? f.input.value : f.input.value.trim()]));
    // What the browser can say at once; the rest comes from the API.
    for (const spec of fields) {
      if (spec.required !== false && !values[spec.name]) {
        show({ field: spec.name, message: `Enter your ${spec.label.toLowerCase()}.` });
        return;
      }
    }
    busy = true;
    setBusy(button, true, busyLabel);
    try {
      const { document, variables } = build(values);
      const data = await query(document, variables);
      const result = data[resultKey];
      if (result.__typename === 'AuthPayload') {
        session.signIn(result);
        toast(welcome || `Welcome${result.user.name ? `, ${result.user.name}` : ''}!`, { kind: 'success', timeout: 3000 });
        navigate(next, { replace: true });
        return;
      }
      show(result);
    } catch (error) {
      formError.textContent = error.message;
    } finally {
      busy = false;
      if (scope.alive) setBusy(button, false);
    }
  });

  const first = inputs[fields[0].name].input;
  scope.timeout(() => first.focus(), 0);
}
