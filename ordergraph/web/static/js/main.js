// Boot: header (nav, cart count, account, live indicator), session, router.

import { onSessionExpired, onSocketStatus } from './api.js';
import { cart } from './cart.js';
import { banner, toast } from './feedback.js';
import { fmt } from './format.js';
import { currentLocation, navigate, onRoute, reload, start } from './router.js';
import { session } from './session.js';
import { fill, h } from './ui.js';

const main = document.getElementById('main');
const account = document.getElementById('account');
const cartLink = document.getElementById('cart-link');
const cartFab = document.getElementById('cart-fab');
const live = document.getElementById('live-indicator');
let currentNav = null;

function renderAccount(user) {
  document.querySelector('[data-nav="orders"]').hidden = !user;
  document.querySelector('[data-nav="admin"]').hidden = !(user && user.role === 'ADMIN');
  if (!user) {
    fill(account,
      h('a', { class: 'btn btn-ghost btn-sm', href: '#/login' }, 'Log in'),
      h('a', { class: 'btn btn-primary btn-sm', href: '#/register' }, 'Sign up'));
    return;
  }
  fill(account,
    h('span', { class: 'who', title: user.email }, user.name || user.email),
    user.role === 'ADMIN' ? h('span', { class: 'role-tag' }, 'Admin') : null,
    h('button', { type: 'button', class: 'btn btn-sm', onclick: logOut }, 'Log out'));
}

function logOut() {
  session.signOut();
  toast('You are logged out.');
  const { path } = currentLocation();
  if (path.startsWith('/admin') || path.startsWith('/orders') || path === '/checkout') navigate('/');
  else reload();
}

function renderCart() {
  const count = cart.count();
  for (const el of document.querySelectorAll('[data-cart-count]')) {
    el.textContent = String(count);
    if (count) delete el.dataset.zero;
    else el.dataset.zero = '';
  }
  cartLink.setAttribute('aria-label', `Cart, ${count} ${count === 1 ? 'item' : 'items'}`);
  const total = cart.subtotal();
  document.querySelector('[data-cart-total]').textContent = total ? `· ${fmt(total)}` : '';
  cartFab.hidden = !count || currentNav === 'cart';
}

function renderNav(route) {
  currentNav = route ? route.nav : null;
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === currentNav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (currentNav === 'cart') cartLink.setAttribute('aria-current', 'page');
  else cartLink.removeAttribute('aria-current');
  renderCart();
}

function renderLive(state) {
  live.hidden = state === 'idle';
  live.dataset.state = state;
  const text = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[state] || '';
  live.querySelector('.live-text').textContent = text;
  live.title = state === 'live' ? 'Receiving live updates' : text;
  if (state === 'reconnecting') banner('Connection lost. Reconnecting… Live updates resume when it is back.');
  else banner(null);
}

// The server's words ("Invalid token.", "Your session has expired; ...") all mean the same
// to the person: log in again.
function expired() {
  if (!session.loggedIn) return;
  const { raw, path } = currentLocation();
  session.signOut('Your session has expired. Log in again to continue.');
  const next = path === '/login' || path === '/register' ? '' : `?next=${encodeURIComponent(raw)}`;
  navigate(`/login${next}`, { replace: true });
}

document.querySelector('[data-skip]').addEventListener('click', (event) => {
  event.preventDefault();
  const heading = main.querySelector('h1');
  const target = heading || main;
  if (heading) heading.setAttribute('tabindex', '-1');
  target.focus();
});

window.addEventListener('unhandledrejection', () => {
  toast('Something went wrong. Try again.', { kind: 'error' });
});

session.onChange(renderAccount);
session.onExpire(expired);
onSessionExpired(expired);
cart.onChange(renderCart);
onSocketStatus(renderLive);
onRoute(renderNav);
renderAccount(session.user);
renderCart();

session.restore().finally(() => start(main));
