/**
 * A private mosquitto for a test: on a free loopback port (or a given one, to
 * restart on the same port), with its own config file and persistence
 * directory, never the machine's broker. `kill` is SIGKILL, as a crash.
 * Persistence is saved every second, so that a persistent subscriber's session
 * survives a kill. With `tls`, the listener speaks TLS only (mqtts://), with
 * the certificate given (test/helpers/testCerts.ts makes one). With
 * `websockets`, a second listener speaks MQTT over WebSocket (`wsUrl`); with
 * `users`, every client must log in (a password_file made by mosquitto_passwd).
 * With `denyPublish`, an ACL that `reloadAcl` changes while it runs.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killOnExit } from '../../runtime/ownedProcess.js';
import { freePort } from '../../runtime/redisServer.js';

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  /** `ws://127.0.0.1:port` with `websockets`, else undefined. */
  readonly wsUrl: string | undefined;
  readonly dir: string;
  readonly process: ChildProcess;
  kill(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Rewrites the ACL (started with `denyPublish`) and has mosquitto read it again (SIGHUP), its clients connected:
   * the new topics denied, the others allowed. It answers nothing when done: wait for a message that says so.
   */
  reloadAcl(denyPublish: readonly string[]): void;
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
  /**
   * A second listener, MQTT over WebSocket, on a free port. Debian's mosquitto 2.0.11 starts no websockets listener
   * on its own ("Unable to start any listening sockets"), hence beside the plain one; and it binds every interface
   * whatever address it is given.
   */
  readonly websockets?: boolean;
  /** user → password: no anonymous client; the passwords hashed into a password_file by `mosquitto_passwd -b`. */
  readonly users?: Readonly<Record<string, string>>;
}

function passwordFile(dir: string, users: Readonly<Record<string, string>>): string {
  const file = join(dir, 'passwd');
  writeFileSync(file, '');
  for (const [user, password] of Object.entries(users)) execFileSync('/usr/bin/mosquitto_passwd', ['-b', file, user, password]);
  // Read by mosquitto after it dropped to its own user.
  chmodSync(file, 0o644);
  return file;
}

function aclFile(dir: string, deny: readonly string[]): string {
  const file = join(dir, 'acl');
  writeFileSync(file, ['topic readwrite #', ...deny.map((t) => `topic deny ${t}`), ''].join('\n'));
  chmodSync(file, 0o644);
  return file;
}

export async function spawnMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = opts.port ?? (await freePort());
  const wsPort = opts.websockets ? await freePort() : undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'voltage-mosquitto-'));
  // Started as root, mosquitto drops to its own user, which must be able to save its database here.
  chmodSync(dir, 0o777);
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...(opts.tls ? [`cafile ${opts.tls.cafile}`, `certfile ${opts.tls.certfile}`, `keyfile ${opts.tls.keyfile}`, 'require_certificate false'] : []),
      ...(opts.users ? ['allow_anonymous false', `password_file ${passwordFile(dir, opts.users)}`] : ['allow_anonymous true']),
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
      // Last: the options above are global (per_listener_settings false), the listener's own are its protocol.
      ...(wsPort ? [`listener ${wsPort} 127.0.0.1`, 'protocol websockets'] : []),
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
  if (wsPort) for (let i = 0; i < 100 && !(await canConnect(wsPort)); i++) await new Promise((r) => setTimeout(r, 50));
  return {
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    wsUrl: wsPort ? `ws://127.0.0.1:${wsPort}` : undefined,
    dir,
    process: child,
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
    reloadAcl(deny) {
      if (!opts.denyPublish) throw new Error('reloadAcl: this mosquitto was started without an ACL (denyPublish)');
      aclFile(dir, deny);
      child.kill('SIGHUP');
    },
  };
}
