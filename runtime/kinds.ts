/**
 * The actor kinds of a site, in start order: the one table from which the
 * supervisor tree and the registry's declaration are built (runtime/actorKind.ts).
 * Models start before the channels that write to them, alarms after the models
 * they watch (and before the channels, so the first values are seen); history
 * after the channels: a failure of its supervisor restarts only itself and the
 * gateway (its consumer groups, and the cloud links', exist before anything starts: each
 * kind's prepare);
 * rules after the channels whose values they read; the gateway last, once there
 * is something to serve. A new kind is one entry here.
 */
import { alarmKind } from '../actors/alarm/AlarmActor.js';
import { channelKind } from '../actors/channel/ChannelActor.js';
import { historyKind } from '../actors/history/HistoryActor.js';
import { cloudKind } from '../actors/cloud/CloudActor.js';
import { ruleKind } from '../actors/rules/RuleActor.js';
import { modelKind } from '../actors/model/ModelActor.js';
import type { ActorKind } from './actorKind.js';
import { gatewayKind } from './gateway/gateway.js';

export const KINDS: readonly ActorKind[] = [modelKind, alarmKind, channelKind, ruleKind, historyKind, gatewayKind, cloudKind];
