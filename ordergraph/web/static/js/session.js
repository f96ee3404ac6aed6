// Who is logged in. The token itself lives in api.js; the user and the token's expiry are
// kept here (and in localStorage, so a reload stays logged in).

import { getToken, query, setToken } from './api.js';
import { ME } from './queries.js';

const USER_KEY = 'og.user';
const EXPIRES_KEY = 'og.expiresAt';
const MAX_TIMER_MS = 2 ** 31 - 1;

const listeners = new Set();
let user = null;
let expiryTimer = null;
let flash = null;
let expiredHandler = () => {};

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // No storage: fine, the session lives in memory.
  }
}

function load(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function notify() {
  for (const fn of [...listeners]) fn(user);
}

function scheduleExpiry(expiresAt) {
  clearTimeout(expiryTimer);
  expiryTimer = null;
  if (!expiresAt) return;
  const delay = new Date(expiresAt).getTime() - Date.now();
  if (Number.isNaN(delay)) return;
  if (delay <= 0) {
    expiredHandler('Your session has expired. Log in again to continue.');
    return;
  }
  expiryTimer = setTimeout(() => scheduleExpiry(expiresAt), Math.min(delay, MAX_TIMER_MS));
}

export const session = {
  get user() {
    return user;
  },
  get loggedIn() {
    return Boolean(user && getToken());
  },
  get isAdmin() {
    return Boolean(user && user.role === 'ADMIN' && getToken());
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  /** Called with a reason when the token's lifetime runs out on this clock. */
  onExpire(fn) {
    expiredHandler = fn;
  },
  /** Read the stored session, then check the token with the server (`me`). */
  async restore() {
    const token = getToken();
    if (!token) {
      store(USER_KEY, null);
      return;
    }
    try {
      user = JSON.parse(load(USER_KEY) || 'null');
    } catch {
      user = null;
    }
    notify();
    const expiresAt = load(EXPIRES_KEY);
    if (expiresAt && new Date(expiresAt).getTime() <= Date.now()) {
      expiredHandler('Your session has expired. Log in again to continue.');
      return;
    }
    try {
      const data = await query(ME);
      if (!data.me) {
        this.signOut();
        return;
      }
      user = data.me;
      store(USER_KEY, JSON.stringify(user));
      scheduleExpiry(expiresAt);
      notify();
    } catch {
      // UNAUTHENTICATED is handled through api.onSessionExpired; a network error keeps the
      // stored user (the pages will show their own errors).
    }
  },
  signIn(auth) {
    user = auth.user;
    store(USER_KEY, JSON.stringify(user));
    store(EXPIRES_KEY, auth.expiresAt || null);
    setToken(auth.token);
    scheduleExpiry(auth.expiresAt);
    notify();
  },
  signOut(message = null) {
    clearTimeout(expiryTimer);
    flash = message;
    user = null;
    store(USER_KEY, null);
    store(EXPIRES_KEY, null);
    setToken(null);
    notify();
  },
  /** A one-time message for the login page (why the person was logged out). */
  takeFlash() {
    const message = flash;
    flash = null;
    return message;
  },
};
