// #/register

import { REGISTER } from '../queries.js';
import { authForm } from './auth-form.js';

export const title = 'Create an account';

export function mount(root, ctx) {
  authForm(root, ctx, {
    heading: 'Create an account',
    sub: 'It takes ten seconds; then check out and follow your orders live.',
    fields: [
      { name: 'name', label: 'Name', autocomplete: 'name', required: false, hint: 'Optional' },
      { name: 'email', label: 'Email', type: 'email', autocomplete: 'email' },
      { name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password',
        hint: 'At least 8 characters.' },
    ],
    submitLabel: 'Create account',
    busyLabel: 'Creating account…',
    resultKey: 'register',
    build: (values) => ({
      document: REGISTER,
      variables: { input: { email: values.email, password: values.password, name: values.name || null } },
    }),
    alt: { text: 'Already have an account?', link: 'Log in', path: '/login' },
  });
}
