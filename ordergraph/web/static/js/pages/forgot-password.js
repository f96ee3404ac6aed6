// #/forgot-password : ask for a reset link. The answer is the same whether or not an account
// exists for the address (the server sends nothing then), so this page never says which.

import { query } from '../api.js';
import { REQUEST_PASSWORD_RESET } from '../queries.js';
import { fieldError, fill, formField, h, setBusy } from '../ui.js';

export const title = 'Forgot password';

export function mount(root, { scope }) {
  const email = formField({ label: 'Email', name: 'email', type: 'email',
    attrs: { autocomplete: 'email', required: true } });
  const formError = h('div', { class: 'form-error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-lg btn-block' }, 'Email me a link');
  const form = h('form', { class: 'form', novalidate: true }, formError, email.wrap, button);
  const body = h('div', { class: 'card-body' }, form);
  fill(root, h('div', { class: 'auth' },
    h('h1', {}, 'Forgot your password?'),
    h('p', { class: 'sub' }, 'Enter the email of your account and we will send you a link to choose a new password.'),
    h('div', { class: 'card' }, body),
    h('p', { class: 'alt' }, 'Remembered it? ', h('a', { href: '#/login' }, 'Log in'))));

  let busy = false;
  scope.listen(form, 'submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    formError.textContent = '';
    fieldError(email.input, email.error, '');
    const address = email.input.value.trim();
    if (!address) {
      fieldError(email.input, email.error, 'Enter your email.');
      email.input.focus();
      return;
    }
    busy = true;
    setBusy(button, true, 'Sending…');
    try {
      await query(REQUEST_PASSWORD_RESET, { email: address });
      if (!scope.alive) return;
      fill(body, h('div', { class: 'form-note', role: 'status' },
        h('strong', {}, 'Check your inbox. '),
        `If an account exists for ${address}, we have emailed it a link to reset the password. `
        + 'The link works once, for 30 minutes.'));
    } catch (error) {
      formError.textContent = error.message;
    } finally {
      busy = false;
      if (scope.alive) setBusy(button, false);
    }
  });
  scope.timeout(() => email.input.focus(), 0);
}
