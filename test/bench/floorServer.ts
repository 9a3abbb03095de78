/**
 * The floor of the REST benchmark: a bare uWebSockets.js server answering every
 * GET with the same ~1 kB of JSON, run as its own process. What the load
 * generator measures against it is what this machine and the generator add by
 * themselves; the rest of a runtime's figure is the runtime's.
 */
import uWS from 'uWebSockets.js';

const body = JSON.stringify({
  id: 'm0',
  values: Array.from({ length: 22 }, (_, i) => ({ name: `v${i}`, unit: null, calculated: false, value: i * 1.5, ts: Date.now(), quality: 'good' })),
});
uWS
  .App()
  .get('/*', (res) => {
    res.cork(() => res.writeHeader('content-type', 'application/json').end(body));
  })
  .listen('127.0.0.1', 0, (socket) => {
    if (!socket) process.exit(1);
    process.send?.(uWS.us_socket_local_port(socket));
  });
