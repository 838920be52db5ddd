/** nsm-ts services, proto package `nsmts.services.v1` (services, frontends with ServiceIPs per balancing policy, backends per source, local redirects, the resolved view data planes consume, reconcile status). */
export * from "../gen/nsmts/services/v1/services_pb.js";
