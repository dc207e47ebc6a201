/**
 * The metav1.Status objects the kubelet writes on the error stream of exec and attach, built in
 * the field order Go's encoding/json produces (metadata, status, message, reason, details, code).
 * Protocol v4 and the websocket protocols send the JSON; v1 to v3 send only the message text of
 * a failure and nothing on success.
 */
export interface Status {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: Array<{ reason?: string; message: string }> };
  code?: number;
}

export function successStatus(): Status {
  return { metadata: {}, status: 'Success' };
}

/** What the kubelet reports when the command ran and exited with a non-zero code. */
export function exitCodeStatus(code: number, command: string[]): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** apierrors.NewInternalError: the command could not be run at all. */
export function internalErrorStatus(message: string): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** The error-stream payload for a protocol: JSON for v4/v5, the bare message before v4. */
export function statusPayload(status: Status, json: boolean): Buffer {
  if (json) return Buffer.from(JSON.stringify(status));
  return Buffer.from(status.status === 'Success' ? '' : (status.message ?? ''));
}
