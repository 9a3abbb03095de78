/**
 * The soak's slow WebSocket client, in a process of its own (forked by
 * ./soakFaults.ts), so that what its messages cost is not counted in the soak
 * process's measures (its pollers' answer times, its Redis probe): a client
 * across the network would not share that event loop.
 * argv: base URL, token, topics. It subscribes and says `subscribed` once it
 * has a snapshot; the parent sends `pause` (it stops reading: its socket
 * paused) and `resume`; it says `snapshot` once a snapshot came after it read
 * again, and `closed` if the gateway closed it. It exits when the parent goes.
 */
import { feedClient } from '../helpers/feedClient.js';

export type SlowClientSays = 'subscribed' | 'snapshot' | 'closed';
export type SlowClientHears = 'pause' | 'resume';

const [base, token, ...topics] = process.argv.slice(2);
const say = (m: SlowClientSays) => process.send?.(m);
process.on('disconnect', () => process.exit(0));

const client = await feedClient(base!, token!);
client.ws.on('close', () => say('closed'));
let resumed = false;
let subscribed = false;
client.ws.on('message', () => {
  // Only whether a snapshot came is kept: the messages are dropped as they are read.
  const snapshot = client.messages.some((m) => m.snapshot);
  client.messages.length = 0;
  client.arrivals.length = 0;
  if (!snapshot) return;
  if (!subscribed) {
    subscribed = true;
    say('subscribed');
  } else if (resumed) {
    resumed = false;
    say('snapshot');
  }
});
process.on('message', (m: SlowClientHears) => {
  if (m === 'pause') client.socket.pause();
  else {
    resumed = true;
    client.socket.resume();
  }
});
client.ws.send(JSON.stringify({ op: 'subscribe', topics }));
