// Sends identify, track and alias calls to Cohort with the official
// RudderStack Node SDK (@rudderstack/rudder-sdk-node), then flushes it.
// The SDK gzips its bodies (labelled application/x-www-form-urlencoded)
// and sends the first event alone.
//
//   node rudderstack.cjs DATA_PLANE_URL WRITE_KEY RUN_ID
//
// Prints a JSON report (see plan.cjs) and exits 0 only if the server
// acknowledged every call.
'use strict';
const zlib = require('node:zlib');
const Analytics = require('@rudderstack/rudder-sdk-node');
const plan = require('./plan.cjs');

function record(requests, config, response) {
  let body = config.data;
  const headers = {};
  for (const [k, v] of Object.entries(config.headers?.toJSON?.() ?? config.headers ?? {})) {
    headers[k.toLowerCase()] = String(v);
  }
  try {
    if (Buffer.isBuffer(body)) {
      body = headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(body) : body;
      body = JSON.parse(body.toString('utf8'));
    } else if (typeof body === 'string') {
      body = JSON.parse(body);
    }
  } catch (err) {
    body = `undecodable body: ${err}`;
  }
  requests.push({
    url: config.url,
    headers,
    body,
    status: response ? response.status : 0,
    response: response ? response.data : undefined,
  });
}

async function main() {
  const { host, writeKey, run } = plan.args();
  const requests = [];
  const errors = [];
  const client = new Analytics(writeKey, {
    dataPlaneUrl: host,
    logLevel: 'error',
    retryCount: 2,
    timeout: 10000,
    errorHandler: (err) => {
      const res = err && err.response;
      errors.push(res ? `HTTP ${res.status} ${res.statusText}: ${JSON.stringify(res.data)}` : `${err}`);
    },
  });
  // Watch the SDK's own HTTP client (axios) to report what went on the wire.
  client.axiosInstance.interceptors.response.use(
    (res) => { record(requests, res.config, res); return res; },
    (err) => { if (err && err.config) record(requests, err.config, err.response); return Promise.reject(err); },
  );

  const calls = plan.calls('rudderstack', run);
  const pending = calls.map(([method, msg]) => new Promise((resolve) => {
    client[method](msg, (err) => {
      if (err) errors.push(`${method}: ${err.message || err}`);
      resolve();
    });
  }));

  // flush() sends at most flushAt messages, after the request before it;
  // call it until the queue is empty, then once more to wait for the last.
  for (let i = 0; i < 100 && client.queue.length > 0; i++) {
    await client.flush();
  }
  await client.flush();
  await Promise.all(pending);
  plan.report('rudderstack', requests, errors);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
