/** retry (registry): try transient failures again. */
export { isRetryable, newClient, type RetryOptions } from "./retry.js";
