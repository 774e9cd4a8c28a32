import { status as grpcStatus, type StatusObject } from '@grpc/grpc-js';
import { NODE_REPLACED } from '../common/registry-words.js';

/** Whether the registration ended because a newer one of the same node replaced it. */
export function takenOver(ended: StatusObject): boolean {
  return ended.code === grpcStatus.ABORTED && ended.details === NODE_REPLACED;
}

/** Says what a takeover of a node that is still running means: two processes give the same address. */
export function takeoverHint(ended: StatusObject): string {
  if (!takenOver(ended)) return '';
  return ' — another process registered this node (same name, host and port): if it is not this one restarted, give each instance its own --advertise-host (ADVERTISE_HOST) or --port';
}
