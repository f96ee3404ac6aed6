// Hash routes (#/orders/12?x=1) -> page modules. A page module exports `title` and
// `mount(root, ctx)`; mount may return { refresh() } (called after the WebSocket reconnects,
// since events may have been missed). Everything a page starts goes through ctx.scope and is
// stopped when the person leaves the page.

import { onReconnect, subscribe } from './api.js';
import { session } from './session.js';
import { emptyState, errorState, fill, h, loadingState } from './ui.js';

const ROUTES = [
  { path: '/', nav: 'catalog', load: () => import('./pages/catalog.js') },
  { path: '/cart', nav: 'cart', load: () => import('./pages/cart.js') },
  { path: '/checkout', nav: 'cart', auth: true, load: () => import('./pages/checkout.js') },
  { path: '/orders', nav: 'orders', auth: true, load: () => import('./pages/orders.js') },
  { path: '/orders/:id', nav: 'orders', auth: true, load: () => import('./pages/order.js') },
  { path: '/login', nav: 'login', load: () => import('./pages/login.js') },
  { path: '/register', nav: 'login', load: () => import('./pages/register.js') },
  { path: '/forgot-password', nav: 'login', load: () => import('./pages/forgot-password.js') },
  { path: '/reset-password', nav: 'login', load: () => import('./pages/reset-password.js') },
  { path: '/admin', nav: 'admin', admin: true, load: () => import('./pages/admin-board.js') },
  { path: '/admin/inventory', nav: 'admin', admin: true, load: () => import('./pages/admin-inventory.js') },
  { path: '/admin/products', nav: 'admin', admin: true, load: () => import('./pages/admin-products.js') },
  { path: '/admin/audit', nav: 'admin', admin: true, load: () => import('./pages/admin-audit.js') },
  { path: '/admin/sales', nav: 'admin', admin: true, load: () => import('./pages/admin-sales.js') },
  { path: '/admin/mail', nav: 'admin', admin: true, load: () => import('./pages/admin-mail.js') },
];

/** What a page starts (subscriptions, timers, listeners), stopped together on leaving. */
export class Scope {
  constructor() {
    this.alive = true;
    this.cleanups = [];
  }

  add(fn) {
    if (!this.alive) fn();
    else this.cleanups.push(fn);
    return fn;
  }

  subscribe(document, variables, handlers) {
    const guard = (fn) => (arg) => { if (this.alive && fn) fn(arg); };
    const stop = subscribe(document, variables, {
      next: guard(handlers.next), error: guard(handlers.error), complete: guard(handlers.complete),
    });
    this.add(stop);
    return () => {
      stop();
      this.cleanups = this.cleanups.filter((fn) => fn !== stop);
    };
  }

  interval(fn, ms) {
    const id = setInterval(fn, ms);
    this.add(() => clearInterval(id));
    return id;
  }

  timeout(fn, ms) {
    const id = setTimeout(() => { if (this.alive) fn(); }, ms);
    this.add(() => clearTimeout(id));
    return id;
  }

  listen(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this.add(() => target.removeEventListener(type, fn, options));
  }

  dispose() {
    this.alive = false;
    const cleanups = this.cleanups.reverse();
    this.cleanups = [];
    for (const fn of cleanups) {
      try {
        fn();
      } catch (error) {
        console.warn('cleanup failed', error);
      }
    }
  }
}

export function currentLocation() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search), raw };
}

export function navigate(to, { replace = false } = {}) {
  const hash = `#${to}`;
  if (location.hash === hash) {
    render();
    return;
  }
  if (replace) location.replace(hash);
  else location.hash = hash;
}

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const route of ROUTES) {
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pattern.forEach((segment, i) => {
      if (segment.startsWith(':')) params[segment.slice(1)] = decodeURIComponent(parts[i]);
      else if (segment !== parts[i]) ok = false;
    });
    if (ok) return { route, params };
  }
  return null;
}

let outlet = null;
let scope = null;
let page = null;
let renderCount = 0;
let firstRender = true;
const routeListeners = new Set();

export function onRoute(fn) {
  routeListeners.add(fn);
}

async function render() {
  const count = ++renderCount;
  const where = currentLocation();
  if (scope) scope.dispose();
  scope = new Scope();
  page = null;
  const found = match(where.path);
  for (const fn of routeListeners) fn(found ? found.route : null);

  const root = h('div', { class: 'page' });
  fill(outlet, root);
  window.scrollTo(0, 0);

  if (!found) {
    document.title = 'Not found · ordergraph';
    fill(root, emptyState('Page not found', 'There is nothing at this address.',
      h('a', { class: 'btn', href: '#/' }, 'Go to the shop')));
    return;
  }
  const { route, params } = found;
  if (route.auth || route.admin) {
    if (!session.loggedIn) {
      const next = encodeURIComponent(where.raw);
      navigate(`/login?next=${next}`, { replace: true });
      return;
    }
    if (route.admin && !session.isAdmin) {
      document.title = 'Admins only · ordergraph';
      fill(root, emptyState('Admins only',
        'This part of ordergraph is for shop administrators.',
        h('a', { class: 'btn', href: '#/' }, 'Go to the shop')));
      return;
    }
  }
  fill(root, loadingState());
  let module;
  try {
    module = await route.load();
  } catch (error) {
    console.error('could not load the page', error);
    if (count !== renderCount) return;
    fill(root, errorState('this page', error, () => render()));
    return;
  }
  if (count !== renderCount) return;
  root.replaceChildren();
  document.title = `${module.title || 'ordergraph'} · ordergraph`;
  const ctx = { params, query: where.query, scope, navigate };
  try {
    page = module.mount(root, ctx) || null;
  } catch (error) {
    console.error('the page failed', error);
    fill(root, errorState('this page', error, () => render()));
  }
  if (!firstRender) {
    const heading = root.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  }
  firstRender = false;
}

/** Re-render the current route (e.g. after logging in or out). */
export function reload() {
  render();
}

export function start(element) {
  outlet = element;
  window.addEventListener('hashchange', () => render());
  onReconnect(() => {
    if (page && typeof page.refresh === 'function') page.refresh();
  });
  render();
}
