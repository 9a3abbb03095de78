/** The protocol table: one entry per name, and the loader knows exactly the protocols in it. */
import { afterEach, describe, expect, it } from 'vitest';
import { createDevice, protocolNames, registerProtocol, unregisterProtocol } from '../../actors/channel/protocols.js';
import { VirtualDevice } from '../../actors/channel/virtualDevice.js';
import { loadConfig } from '../../runtime/config/load.js';
import { pointSchema, protocolChannelSchema, virtualChannelSchema, type ChannelConfig } from '../../runtime/config/schema.js';
import { configIssues } from '../helpers/configIssues.js';
import { quietLog, writeSite } from '../helpers/servers.js';

const ctx = { log: quietLog, now: Date.now };

const issuesOf = (yaml: string) => configIssues({ 'channels.yaml': yaml });

/** The one channel of a site loaded from `yaml`. */
function onlyChannel(yaml: string): ChannelConfig {
  const [channel] = loadConfig(writeSite({ 'channels.yaml': yaml })).channels;
  if (!channel) throw new Error('the site has no channel');
  return channel;
}

afterEach(() => {
  unregisterProtocol('dummy');
});

describe('protocol table', () => {
  it('holds the built-in protocols once the loader is imported', () => {
    expect(protocolNames()).toEqual(expect.arrayContaining(['virtual', 'modbus-tcp', 'modbus-rtu-tcp', 'modbus-rtu']));
    const channel = onlyChannel('channels:\n  - id: v\n    protocol: virtual\n    points:\n      - { type: m, id: 1, sim: { kind: constant, value: 2 } }\n');
    expect(createDevice(channel, ctx)).toBeInstanceOf(VirtualDevice);
  });

  it('rejects a second registration of a name, built-in or not, and keeps the first', () => {
    expect(() => registerProtocol('virtual', { schema: virtualChannelSchema, device: (c) => new VirtualDevice(c) })).toThrow(
      /protocol 'virtual' is registered twice/,
    );
    const schema = protocolChannelSchema('dummy', pointSchema);
    registerProtocol('dummy', {
      schema,
      device: () => {
        throw new Error('first');
      },
    });
    expect(() =>
      registerProtocol('dummy', {
        schema,
        device: () => {
          throw new Error('second');
        },
      }),
    ).toThrow(expect.objectContaining({ code: 'DUPLICATE_PROTOCOL' }));
    const channel = onlyChannel('channels:\n  - id: d\n    protocol: dummy\n');
    expect(() => createDevice(channel, ctx)).toThrow('first');
  });

  it('an unknown protocol in a config is an error at its position that lists the known ones', () => {
    const [i] = issuesOf('channels:\n  - id: x\n    protocol: modbus-udp\n');
    expect(i).toMatchObject({ file: 'channels.yaml', line: 3, column: 15, code: 'INVALID_VALUE' });
    expect(i?.message).toContain('channels[0].protocol must be one of');
    expect(i?.message).toContain('"modbus-tcp"');
    expect(i?.message).toContain('not the text "modbus-udp"');
  });

  it('a protocol registered later is accepted by the loader, and unknown again once removed', () => {
    const yaml = 'channels:\n  - id: d\n    protocol: dummy\n    points:\n      - { type: m, id: 1 }\n';
    expect(issuesOf(yaml)[0]).toMatchObject({ line: 3, code: 'INVALID_VALUE' });
    registerProtocol('dummy', {
      schema: protocolChannelSchema('dummy', pointSchema),
      device: () => {
        throw new Error('unused');
      },
    });
    expect(issuesOf(yaml)).toEqual([]);
    unregisterProtocol('dummy');
    expect(issuesOf(yaml)[0]?.message).toContain('not the text "dummy"');
  });

  it('a channel whose protocol is not registered gets no device, with a message naming it', () => {
    const channel = onlyChannel('channels:\n  - id: v\n    protocol: virtual\n');
    expect(() => createDevice({ ...channel, protocol: 'nope' }, ctx)).toThrow(/no protocol 'nope' is registered/);
  });
});
