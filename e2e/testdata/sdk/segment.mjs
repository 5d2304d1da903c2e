// Sends identify, track and alias calls to Cohort with the official Segment
// Node SDK (@segment/analytics-node), then closes it, flushing everything.
//
//   node segment.mjs HOST WRITE_KEY RUN_ID     (HOST like http://127.0.0.1:8080)
//
// Prints a JSON report (see plan.cjs) and exits 0 only if the server
// acknowledged every call.
import { Analytics } from '@segment/analytics-node';
import plan from './plan.cjs';

const { host, writeKey, run } = plan.args();
const analytics = new Analytics({ writeKey, host, maxRetries: 2, httpRequestTimeout: 10000 });

const requests = [];
const errors = [];
analytics.on('http_request', (req) => {
  requests.push({ url: req.url, headers: req.headers, body: JSON.parse(req.body) });
});
analytics.on('http_response', (res) => {
  // Requests go out one at a time here: the response is the last request's.
  const req = requests[requests.length - 1];
  if (req) req.status = res.status;
  if (res.status !== 200) errors.push(`HTTP ${res.status} ${res.statusText}`);
});
analytics.on('error', (err) => errors.push(`error event: ${err.code ?? ''} ${err.reason ?? err.message ?? err}`));

const calls = plan.calls('segment', run);
const pending = calls.map(([method, msg]) => new Promise((resolve) => {
  analytics[method](msg, (err) => {
    if (err) errors.push(`${method}: ${err.message ?? err}`);
    resolve();
  });
}));

try {
  await analytics.closeAndFlush({ timeout: 20000 });
  await Promise.all(pending);
} catch (err) {
  errors.push(`closeAndFlush: ${err.stack ?? err}`);
}
plan.report('segment', requests, errors);
