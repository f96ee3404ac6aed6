// Stripe.js, loaded from the URL the API gives (paymentConfig): real Stripe with a
// publishable key, or the local emulator's stand-in in local payments mode.

import { query } from './api.js';
import { PAYMENT_CONFIG } from './queries.js';

let configPromise = null;
let stripePromise = null;

export function paymentConfig() {
  if (!configPromise) {
    configPromise = query(PAYMENT_CONFIG).then((data) => data.paymentConfig);
    configPromise.catch(() => { configPromise = null; });
  }
  return configPromise;
}

/** The Stripe object for this page (one per page load). */
export function loadStripe(config) {
  if (!stripePromise) {
    stripePromise = new Promise((resolve, reject) => {
      const create = () => {
        try {
          resolve(window.Stripe(config.publishableKey));
        } catch (error) {
          reject(error);
        }
      };
      if (typeof window.Stripe === 'function') {
        create();
        return;
      }
      // A classic script: the emulator's copy finds its own address in document.currentScript.
      const script = document.createElement('script');
      script.src = config.stripeJsUrl;
      script.async = true;
      script.onload = () => {
        if (typeof window.Stripe === 'function') create();
        else reject(new Error('The payment library did not load.'));
      };
      script.onerror = () => {
        script.remove();
        reject(new Error('Could not load the payment form. Check your connection and try again.'));
      };
      document.head.append(script);
    });
    stripePromise.catch(() => { stripePromise = null; });
  }
  return stripePromise;
}
