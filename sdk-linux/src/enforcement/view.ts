/**
 * What the enforcer reads from the resource managers (`nsmts.resources.v1`): ports, security groups, subnets,
 * route tables, and a feed of their changes. An interface, so the enforcer does not care whether the records
 * come over gRPC (the Watch RPC of the resource managers) or from an in-process store.
 */
import type { Port, RouteTable, SecurityGroup, Subnet } from "@nsm-ts/api/resources";

/** The kinds of record enforcement depends on. */
export type WatchedKind = "port" | "securitygroup" | "subnet" | "routetable";

/** One record that changed (created, updated or deleted); the enforcer reads it again. */
export interface ResourceChange {
  readonly kind: WatchedKind;
  readonly id: string;
  /**
   * For a port: the security groups it was in before the change and is in after it, so the enforcer re-renders
   * exactly the connections naming one of them (a port leaving a group changes that group's members too).
   * Without it, a port change re-renders every connection.
   */
  readonly groups?: readonly string[];
}

/** Read access to the resource managers, plus their change feed. Every method resolves `undefined` for a missing record. */
export interface ResourceView {
  getPort(id: string, signal: AbortSignal): Promise<Port | undefined>;
  getSecurityGroup(id: string, signal: AbortSignal): Promise<SecurityGroup | undefined>;
  /** The ports that list `securityGroupId` (the members a `remote_group_id` rule admits). */
  portsInGroup(securityGroupId: string, signal: AbortSignal): Promise<readonly Port[]>;
  getSubnet(id: string, signal: AbortSignal): Promise<Subnet | undefined>;
  getRouteTable(id: string, signal: AbortSignal): Promise<RouteTable | undefined>;
  /**
   * Changes after the call, until `signal` aborts. `ready` resolves once the feed is established, so a caller
   * that reads after it cannot miss a change made after its read.
   */
  watch(signal: AbortSignal): { readonly changes: AsyncIterable<ResourceChange>; readonly ready: Promise<void> };
}
