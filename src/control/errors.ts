// The control plane's one error shape: what kind of refusal it is, never how a transport spells it (admin/server.ts maps it).
export type ControlErrorKind =
  /** The request itself is wrong (a bad key, a listen address another tenant holds in that namespace). */
  | "invalid"
  /** The request clashes with state it may not change (a config-declared tenant, an ingress host another tenant holds). */
  | "conflict"
  /** A reload whose new configuration is invalid: the running one stays. */
  | "rejected";

export class ControlError extends Error {
  constructor(
    readonly kind: ControlErrorKind,
    message: string,
    /** The request field at fault, when there is one: "listen", "headers.X-Plan", … */
    readonly field?: string,
  ) {
    super(message);
    this.name = "ControlError";
  }
}
