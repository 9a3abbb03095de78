/**
 * The actor kinds of a site, in start order: the one table from which the
 * supervisor tree and the registry's declaration are built (runtime/actorKind.ts).
 * Models start before the channels that write to them; the gateway last, once
 * there is something to serve; rules after the channels whose values they read. A new kind is one entry here.
 */
import { channelKind } from '../actors/channel/ChannelActor.js';
import { ruleKind } from '../actors/rules/RuleActor.js';
import { modelKind } from '../actors/model/ModelActor.js';
import type { ActorKind } from './actorKind.js';
import { gatewayKind } from './gateway/gateway.js';

export const KINDS: readonly ActorKind[] = [modelKind, channelKind, ruleKind, gatewayKind];
