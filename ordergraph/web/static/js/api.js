// The client's only way to the server: the public GraphQL API.
//   query(doc, variables)            POST /graphql with the bearer token
//   subscribe(doc, variables, {...}) one shared graphql-transport-ws WebSocket on /graphql
// The token lives in localStorage. An UNAUTHENTICATED answer (or a WebSocket closed with 4403)
// while a token is set means the session is over: listeners of onSessionExpired() hear why.

const TOKEN_KEY = 'og.token';
const PROTOCOL = 'graphql-transport-ws';

export class ApiError extends Error {
  constructor(message, code = 'ERROR', details = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    Object.assign(this, details);
  }
}

let token = readToken();
const expiredListeners = new Set();
const statusListeners = new Set();
const reconnectListeners = new Set();

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function getToken() {
  return token;
}

/** Set (or clear, with null) the bearer token; the WebSocket re-authenticates. */
export function setToken(next) {
  if (next === token) return;
  token = next;
  try {
    if (next) localStorage.setItem(TOKEN_KEY, next);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Private mode without storage: the session lasts as long as the tab.
  }
  socket.restart();
}

/** fn(message) when the server says the token is no longer good. */
export function onSessionExpired(fn) {
  expiredListeners.add(fn);
  return () => expiredListeners.delete(fn);
}

/** fn(state) with 'idle' | 'connecting' | 'live' | 'reconnecting'. */
export function onSocketStatus(fn) {
  statusListeners.add(fn);
  fn(socket.status);
  return () => statusListeners.delete(fn);
}

/** fn() after the WebSocket came back: events may have been missed, refetch. */
export function onReconnect(fn) {
  reconnectListeners.add(fn);
  return () => reconnectListeners.delete(fn);
}

function sessionExpired(message) {
  if (!token) return;
  const reason = message || 'Your session has expired.';
  for (const fn of [...expiredListeners]) fn(reason);
}

function errorFrom(errors) {
  const first = errors[0] || {};
  const code = (first.extensions && first.extensions.code) || 'ERROR';
  return new ApiError(first.message || 'Something went wrong.', code, { errors });
}

/** Run a query or mutation; resolves with `data`, rejects with ApiError. */
export async function query(document, variables = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  const sentWith = token;
  if (sentWith) headers.authorization = `Bearer ${sentWith}`;
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: document, variables }),
    });
  } catch {
    throw new ApiError('Cannot reach the server. Check your connection and try again.',
      'NETWORK');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}. Try again in a moment.`,
      `HTTP_${response.status}`);
  }
  if (body.errors && body.errors.length) {
    const error = errorFrom(body.errors);
    if (error.code === 'UNAUTHENTICATED' && sentWith && sentWith === token) {
      sessionExpired(error.message);
    }
    throw error;
  }
  if (!body.data) throw new ApiError('The server sent no data.', 'NO_DATA');
  return body.data;
}

// ---- graphql-transport-ws --------------------------------------------------------------

const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;
const ACK_WITHIN_MS = 10000;
const IDLE_CLOSE_MS = 3000;

class Socket {
  constructor() {
    this.ws = null;
    this.acked = false;
    this.status = 'idle';
    this.subs = new Map(); // id -> { payload, handlers }
    this.nextId = 1;
    this.attempt = 0;
    this.everAcked = false;
    this.timers = {};
    this.authRejected = false;
    window.addEventListener('online', () => {
      if (!this.ws && this.subs.size) this.connectSoon(0);
    });
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    for (const fn of [...statusListeners]) fn(status);
  }

  subscribe(document, variables, handlers) {
    const id = String(this.nextId++);
    const sub = { payload: { query: document, variables: variables || {} }, handlers };
    this.subs.set(id, sub);
    clearTimeout(this.timers.idle);
    if (this.acked) this.send({ id, type: 'subscribe', payload: sub.payload });
    else if (!this.ws && !this.timers.reconnect) this.connect();
    return () => this.unsubscribe(id);
  }

  unsubscribe(id) {
    if (!this.subs.delete(id)) return;
    if (this.acked) this.send({ id, type: 'complete' });
    if (!this.subs.size) {
      clearTimeout(this.timers.idle);
      this.timers.idle = setTimeout(() => {
        if (!this.subs.size) this.close();
      }, IDLE_CLOSE_MS);
    }
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  connect() {
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = null;
    if (this.ws || !this.subs.size) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
    this.setStatus(this.everAcked ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(url, PROTOCOL);
    } catch {
      this.connectSoon();
      return;
    }
    this.ws = ws;
    this.acked = false;
    const authToken = token;
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: 'connection_init',
        payload: authToken ? { authorization: `Bearer ${authToken}` } : {},
      }));
      this.timers.ack = setTimeout(() => ws.close(4408, 'No acknowledgement'), ACK_WITHIN_MS);
    };
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event, authToken);
    ws.onerror = () => {
      // A close event follows; reconnecting happens there.
    };
  }

  receive(ws, raw) {
    if (ws !== this.ws) return;
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    switch (message.type) {
      case 'connection_ack': {
        clearTimeout(this.timers.ack);
        this.acked = true;
        this.authRejected = false;
        const wasReconnect = this.everAcked;
        this.everAcked = true;
        this.attempt = 0;
        this.setStatus('live');
        for (const [id, sub] of this.subs) this.send({ id, type: 'subscribe', payload: sub.payload });
        this.keepAlive();
        if (wasReconnect) for (const fn of [...reconnectListeners]) fn();
        break;
      }
      case 'ping':
        this.send({ type: 'pong' });
        break;
      case 'pong':
        clearTimeout(this.timers.pong);
        break;
      case 'next': {
        const sub = this.subs.get(message.id);
        if (!sub) break;
        const payload = message.payload || {};
        if (payload.errors && payload.errors.length) this.failed(message.id, sub, payload.errors);
        else if (payload.data) sub.handlers.next(payload.data);
        break;
      }
      case 'error': {
        const sub = this.subs.get(message.id);
        if (sub) this.failed(message.id, sub, Array.isArray(message.payload) ? message.payload : []);
        break;
      }
      case 'complete': {
        const sub = this.subs.get(message.id);
        if (sub) {
          this.subs.delete(message.id);
          if (sub.handlers.complete) sub.handlers.complete();
        }
        break;
      }
      default:
        break;
    }
  }

  failed(id, sub, errors) {
    this.subs.delete(id);
    const error = errorFrom(errors);
    if (error.code === 'UNAUTHENTICATED') sessionExpired(error.message);
    if (sub.handlers.error) sub.handlers.error(error);
  }

  keepAlive() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (!this.acked) return;
      this.send({ type: 'ping' });
      clearTimeout(this.timers.pong);
      this.timers.pong = setTimeout(() => {
        if (this.ws) this.ws.close(4000, 'No pong');
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  clearTimers() {
    clearTimeout(this.timers.ack);
    clearTimeout(this.timers.pong);
    clearInterval(this.timers.ping);
  }

  closed(ws, event, authToken) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.acked = false;
    this.clearTimers();
    if (event.code === 4403 || event.code === 4401) {
      // The server refused our token. If it is still the current one, the session is over;
      // the app clears it (setToken(null)), which reconnects anonymously.
      if (authToken && authToken === token) {
        this.authRejected = true;
        this.setStatus('idle');
        sessionExpired('Your session has expired. Log in again to continue.');
        return;
      }
    }
    if (this.subs.size) this.connectSoon();
    else this.setStatus('idle');
  }

  connectSoon(delay) {
    if (this.timers.reconnect) return;
    const wait = delay ?? Math.min(15000, 500 * 2 ** this.attempt) * (0.6 + Math.random() * 0.4);
    this.attempt += 1;
    this.setStatus(this.everAcked ? 'reconnecting' : 'connecting');
    this.timers.reconnect = setTimeout(() => this.connect(), wait);
  }

  /** New credentials: drop the connection and open a new one with the same subscriptions. */
  restart() {
    this.authRejected = false;
    const ws = this.ws;
    this.ws = null;
    this.acked = false;
    this.clearTimers();
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(1000, 'Credentials changed');
    }
    this.attempt = 0;
    if (this.subs.size) {
      // The new connection counts as a reconnect: pages refetch with the new identity.
      this.connect();
    } else {
      this.setStatus('idle');
    }
  }

  close() {
    const ws = this.ws;
    this.ws = null;
    this.acked = false;
    this.clearTimers();
    if (ws) {
      ws.onclose = null;
      ws.close(1000, 'Idle');
    }
    this.setStatus('idle');
  }
}

const socket = new Socket();

/**
 * Subscribe over the shared WebSocket. handlers: { next(data), error(ApiError), complete() }.
 * Returns a function that ends the subscription. After a reconnect the subscription is sent
 * again (so it starts with a fresh SNAPSHOT where the field sends one).
 */
export function subscribe(document, variables, handlers) {
  return socket.subscribe(document, variables, handlers);
}
