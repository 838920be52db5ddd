/** retry element (client): tries a transiently failing Request again until its deadline; Close at most twice. */
export { isRetryable, newClient, type RetryOptions } from "./client.js";
