// The client's only way to the server: the public GraphQL API.
//   query(doc, variables)            POST /graphql with the bearer token
//   subscribe(doc, variables, {...}) one shared graphql-transport-ws WebSocket on /graphql
// The token lives in localStorage. An UNAUTHENTICATED answer (or a WebSocket closed with 4403)
// while a token is set means the session is over: listeners of onSessionExpired() hear why.

import { ApiError, errorFrom } from './api-error.js';
import { Socket } from './socket.js';

export { ApiError };

const TOKEN_KEY = 'og.token';

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

// One WebSocket for every subscription; it hears the token and tells the listeners above.
const socket = new Socket({
  getToken,
  onStatus: (status) => {
    for (const fn of [...statusListeners]) fn(status);
  },
  onReconnect: () => {
    for (const fn of [...reconnectListeners]) fn();
  },
  onSessionExpired: sessionExpired,
});

/**
 * Subscribe over the shared WebSocket. handlers: { next(data), error(ApiError), complete() }.
 * Returns a function that ends the subscription. After a reconnect the subscription is sent
 * again (so it starts with a fresh SNAPSHOT where the field sends one).
 */
export function subscribe(document, variables, handlers) {
  return socket.subscribe(document, variables, handlers);
}
