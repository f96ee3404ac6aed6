// #/login

import { LOGIN } from '../queries.js';
import { h } from '../ui.js';
import { authForm } from './auth-form.js';

export const title = 'Log in';

export function mount(root, ctx) {
  authForm(root, ctx, {
    heading: 'Log in',
    sub: 'Welcome back. Log in to see your orders.',
    fields: [
      { name: 'email', label: 'Email', type: 'email', autocomplete: 'email' },
      { name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' },
    ],
    submitLabel: 'Log in',
    busyLabel: 'Logging in…',
    resultKey: 'login',
    extra: h('p', { class: 'forgot' }, h('a', { href: '#/forgot-password' }, 'Forgot password?')),
    build: (values) => ({ document: LOGIN, variables: { email: values.email, password: values.password } }),
    alt: { text: 'New here?', link: 'Create an account', path: '/register',
      demo: 'Demo accounts: customer@example.com / customer123, admin@example.com / admin123' },
  });
}
