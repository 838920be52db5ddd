/**
 * Enforcement on connections: a port's security groups as an nftables table on the connection's client
 * interface, its subnet's route table and `ip_context.policies` as routes and policy rules in the client's netns,
 * kept current by a reconciler fed by the resource managers' change feed.
 */
export { applyEnforcement, type EnforcementOwner, type EnforcementState, removeEnforcement } from "./apply.js";
export { type Attachment, createEnforcer, type Enforcer, type EnforcerOptions } from "./enforcer.js";
export { createGrpcResourceView, type GrpcResourceViewOptions } from "./grpc-view.js";
export {
  ENFORCE_PROTO,
  isPolicyTableOf,
  POLICY_RULE_PRIORITY,
  POLICY_TABLE_MIN,
  POLICY_TABLES_PER_CONNECTION,
  type PolicyInput,
  policyTableBase,
  type RoutingInput,
  type RoutingPlan,
  renderRouting,
  type TableRoute,
  type WantedRoute,
  type WantedRule,
} from "./render-routes.js";
export {
  renderSecurityGroups,
  SG_TABLE_PREFIX,
  type SgGroup,
  type SgInput,
  type SgRenderResult,
  type SgRule,
  sgTableName,
  sgTableRef,
} from "./render-sg.js";
export type { ResourceChange, ResourceView, WatchedKind } from "./view.js";
