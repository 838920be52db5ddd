/** retry element (client): tries a transiently failing Request again until its deadline; Close at most twice. */
export { newClient, isRetryable, type RetryOptions } from "./client.js";
