// The shared graphql-transport-ws WebSocket on /graphql: connection_init with the token, ack,
// ping/pong, re-subscribing after a reconnect, reconnecting with backoff. It knows the session
// only through what api.js hands it: getToken(), and callbacks for status, reconnect, expiry.

import { errorFrom } from './api-error.js';

const PROTOCOL = 'graphql-transport-ws';
const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;
const ACK_WITHIN_MS = 10000;
const IDLE_CLOSE_MS = 3000;

/**
 * new Socket({ getToken, onStatus(status), onReconnect(), onSessionExpired(message) }):
 * getToken() is read at each connect; onStatus hears 'idle' | 'connecting' | 'live' |
 * 'reconnecting'; onReconnect runs after a connection that follows an earlier one was acked;
 * onSessionExpired runs when the server refuses the token or a subscription is UNAUTHENTICATED.
 */
export class Socket {
  constructor({ getToken, onStatus, onReconnect, onSessionExpired }) {
    this.getToken = getToken;
    this.onStatus = onStatus;
    this.onReconnect = onReconnect;
    this.onSessionExpired = onSessionExpired;
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
    this.onStatus(status);
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
    const authToken = this.getToken();
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
        if (wasReconnect) this.onReconnect();
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
    if (error.code === 'UNAUTHENTICATED') this.onSessionExpired(error.message);
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
      if (authToken && authToken === this.getToken()) {
        this.authRejected = true;
        this.setStatus('idle');
        this.onSessionExpired('Your session has expired. Log in again to continue.');
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
