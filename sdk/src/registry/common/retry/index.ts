/** retry (registry): try transient failures again. */
export { newClient, isRetryable, type RetryOptions } from "./retry.js";
