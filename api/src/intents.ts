/** nsm-ts traffic intents, proto package `nsmts.intents.v1` (clusters, traffic groups, inbound and outbound intents, delivery status). */
export * from "../gen/nsmts/intents/v1/intents_pb.js";
