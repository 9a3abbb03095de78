/**
 * A private mosquitto for a test: on a free loopback port (or a given one, to
 * restart on the same port), with its own config file and persistence
 * directory, never the machine's broker. `kill` is SIGKILL, as a crash.
 * Persistence is saved every second, so that a persistent subscriber's session
 * survives a kill. With `tls`, the listener speaks TLS only (mqtts://), with
 * the certificate given (test/helpers/testCerts.ts makes one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, killOnExit } from '../../runtime/redisServer.js';

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: ChildProcess;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export interface MosquittoOptions {
  readonly port?: number;
  readonly dir?: string;
  readonly tls?: { readonly cafile: string; readonly certfile: string; readonly keyfile: string };
  /** false: nothing saved (the benchmark's broker, whose disk would be what it measures). */
  readonly persistence?: boolean;
  /** QoS 1 messages in flight to each subscriber (mosquitto's default 20 holds a fast subscriber to round trips). */
  readonly maxInflight?: number;
  /**
   * `set_tcp_nodelay true`: mosquitto writes each PUBACK and each forwarded PUBLISH as it makes it, instead of
   * leaving Nagle's algorithm on (its default), which holds small writes until the previous one is acknowledged.
   */
  readonly tcpNoDelay?: boolean;
  /** Topics no client may publish to (an ACL file: everything else allowed; MQTT 5 publishers get PUBACK 0x87). */
  readonly denyPublish?: readonly string[];
}

function aclFile(dir: string, deny: readonly string[]): string {
  const file = join(dir, 'acl');
  writeFileSync(file, ['topic readwrite #', ...deny.map((t) => `topic deny ${t}`), ''].join('\n'));
  chmodSync(file, 0o644);
  return file;
}

export async function spawnMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'voltage-mosquitto-'));
  // Started as root, mosquitto drops to its own user, which must be able to save its database here.
  chmodSync(dir, 0o777);
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...(opts.tls ? [`cafile ${opts.tls.cafile}`, `certfile ${opts.tls.certfile}`, `keyfile ${opts.tls.keyfile}`, 'require_certificate false'] : []),
      'allow_anonymous true',
      ...(opts.persistence === false
        ? ['persistence false']
        : [
            'persistence true',
            `persistence_location ${dir}/`,
            // Saved after every change (queued and in-flight messages included): a broker killed with SIGKILL
            // loses what it accepted and had not saved, which the link cannot know (it had the PUBACK).
            'autosave_on_changes true',
            'autosave_interval 1',
          ]),
      ...(opts.maxInflight ? [`max_inflight_messages ${opts.maxInflight}`] : []),
      ...(opts.tcpNoDelay ? ['set_tcp_nodelay true'] : []),
      ...(opts.denyPublish ? [`acl_file ${aclFile(dir, opts.denyPublish)}`] : []),
      'max_queued_messages 100000',
      'log_dest none',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
  killOnExit(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode} on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const end = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  return { port, url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`, dir, process: child, kill: () => end('SIGKILL'), stop: () => end('SIGTERM') };
}
