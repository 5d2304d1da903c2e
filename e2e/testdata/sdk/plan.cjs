// The calls every SDK script makes, and the report it prints, shared by
// segment.mjs and rudderstack.cjs. The Go test (e2e/sdk_test.go) checks what
// the server stored against the same plan: keep the two in step.
//
// Ids are derived from the SDK name and the run id the test passes:
// "<sdk>-<run>-user" and "<sdk>-<run>-anon".
'use strict';

function args() {
  const [host, writeKey, run] = process.argv.slice(2);
  if (!host || !writeKey || !run) {
    console.error('usage: node SCRIPT HOST WRITE_KEY RUN_ID');
    process.exit(2);
  }
  return { host, writeKey, run };
}

// An event that happened two hours before it was sent, with an explicit
// timestamp: the server must keep that time (corrected for clock skew).
const backdateMs = 2 * 3600 * 1000;

function calls(sdk, run) {
  const userId = `${sdk}-${run}-user`;
  const anonymousId = `${sdk}-${run}-anon`;
  return [
    // RudderStack sends this first call alone; the others go in one batch.
    ['identify', {
      userId,
      traits: {
        name: 'Ada Lovelace',
        email: `ada+${run}@example.com`,
        plan: 'pro',
        age: 36,
        vip: true,
        address: { city: 'London', postalCode: 'W1' },
        tags: ['math', 'poetry'],
      },
    }],
    ['track', {
      userId,
      event: 'Order Completed',
      properties: {
        order_id: `order-${run}`,
        revenue: 42.5,
        currency: 'EUR',
        coupon: null,
        products: [{ sku: 'SKU-1', quantity: 2 }, { sku: 'SKU-2', quantity: 1 }],
      },
    }],
    ['track', { userId, event: 'Song Played', properties: { title: 'Blue', seconds: 181 } }],
    ['track', { userId, event: 'Song Played', properties: { title: 'Red', seconds: 240 } }],
    ['track', {
      userId,
      event: 'Subscription Started',
      properties: { tier: 'gold' },
      timestamp: new Date(Date.now() - backdateMs),
    }],
    // An anonymous visitor with a trait of its own and a conflicting one...
    ['identify', { anonymousId, traits: { referrer: 'newsletter', plan: 'free' } }],
    ['track', { anonymousId, event: 'Product Viewed', properties: { sku: 'SKU-9', price: 9.99, in_stock: true } }],
    // ...who turns out to be the user.
    ['alias', { previousId: anonymousId, userId }],
  ];
}

// report prints, as the last line of stdout, one JSON object the Go test
// reads: every HTTP request the SDK made, with its decoded body and the
// status it got, and the errors seen. It exits 1 if there were errors.
function report(sdk, requests, errors) {
  process.stdout.write(JSON.stringify({ sdk, requests, errors }) + '\n');
  if (errors.length > 0) {
    console.error(`${sdk}: ${errors.join('\n')}`);
    process.exitCode = 1;
  }
}

module.exports = { args, calls, report };
