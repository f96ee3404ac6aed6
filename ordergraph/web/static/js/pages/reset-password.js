// #/reset-password?token=... : the emailed link. Sets a new password and logs in; every
// session opened before (other devices included) is logged out.

import { RESET_PASSWORD } from '../queries.js';
import { emptyState, fill, h } from '../ui.js';
import { authForm } from './auth-form.js';

export const title = 'Choose a new password';

export function mount(root, ctx) {
  const token = ctx.query.get('token') || '';
  if (!token) {
    fill(root, emptyState('This link is incomplete',
      'Open the link from the email again, or ask for a new one.',
      h('a', { class: 'btn', href: '#/forgot-password' }, 'Ask for a new link')));
    return;
  }
  authForm(root, ctx, {
    heading: 'Choose a new password',
    sub: 'You will be logged in with it; other sessions are logged out.',
    fields: [
      { name: 'newPassword', label: 'New password', type: 'password', autocomplete: 'new-password',
        hint: 'At least 8 characters.' },
    ],
    submitLabel: 'Set password',
    busyLabel: 'Saving…',
    resultKey: 'resetPassword',
    welcome: 'Your password is changed. You are logged in.',
    build: (values) => ({ document: RESET_PASSWORD, variables: { token, newPassword: values.newPassword } }),
    alt: { text: 'Link expired or used?', link: 'Ask for a new one', path: '/forgot-password' },
  });
}
