// Every merge method Graft runs, in one list. The CLI's help, recipe diagnostics and completion,
// the planner and the workers all look methods up here; adding a method is adding its module to
// this list.
import { linear } from './linear';
import { modelStock } from './modelStock';
import { nearswap } from './nearswap';
import { passthrough } from './passthrough';
import { pcb } from './pcb';
import { sce } from './sce';
import { karcher, multislerp, nuslerp, slerp } from './spherical';
import { breadcrumbs, breadcrumbsTies, dareLinear, dareTies, della, dellaLinear, magnitudePrune, taskArithmetic, ties } from './taskVectors';
import { diffTransfer } from './transfer';
import type { MergeMethod } from './types';

export const MERGE_METHODS: readonly MergeMethod[] = [
  linear,
  taskArithmetic,
  ties,
  dareTies,
  dareLinear,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  magnitudePrune,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  modelStock,
  sce,
  nearswap,
  pcb,
  passthrough,
  diffTransfer,
];

const byName = new Map(MERGE_METHODS.map((m) => [m.name, m]));
if (byName.size !== MERGE_METHODS.length) throw new Error('Two merge methods share a name.');

export function findMethod(name: string): MergeMethod | undefined {
  return byName.get(name);
}

export function methodNames(): string[] {
  return MERGE_METHODS.map((m) => m.name);
}
