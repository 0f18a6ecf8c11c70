// A container's nsproxy.* labels as the tenant table `tenant add` would build: only the labels the operator set on the container.
import { Invalid } from "../config/layer.ts";
import { type Loaded, resolveTenant } from "../config/load.ts";
import { TENANT_SETTINGS } from "../config/settings.ts";
import { checkTenantTable } from "../config/tenant-table.ts";
import type { TenantSpec } from "../config/types.ts";
import { isValidTenantName } from "../config/values.ts";

export const LABEL_PREFIX = "nsproxy.";
export const ENABLE_LABEL = "nsproxy.enable";
/** The tenant's name, when it is not the container's. */
export const TENANT_LABEL = "nsproxy.tenant";
const HEADER_PREFIX = "nsproxy.header.";

/**
 * The labels set on the container itself. Docker and Podman copy the image's labels into the container's at
 * create time, so whoever built the image could name its tenant, its headers or its upstream. A label whose key
 * and value are both the image's is taken as the image's and dropped; an operator who sets the same pair on the
 * container gets the same result from the image alone, so nothing the operator meant is lost but the choice.
 */
export function ownLabels(container: Record<string, string>, image: Record<string, string>): { own: Record<string, string>; ignored: string[] } {
  const own: Record<string, string> = {};
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(container)) {
    if (Object.hasOwn(image, k) && image[k] === v) {
      if (k.startsWith(LABEL_PREFIX)) ignored.push(k);
      continue;
    }
    own[k] = v;
  }
  return { own, ignored };
}

/** Why a container is not served: the label at fault (undefined when none is), and the reason. */
export class LabelError extends Error {
  constructor(
    message: string,
    readonly label?: string,
  ) {
    super(message);
  }
}

/** Only `nsproxy.enable=true` (any case) opts a container in; anything else leaves it alone. */
export function enabled(labels: Record<string, string>): boolean {
  return (labels[ENABLE_LABEL] ?? "").trim().toLowerCase() === "true";
}

function splitList(v: string): string[] {
  return v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * The tenant table the nsproxy.* labels describe, with the container's namespace: what a tenants-dir file would
 * hold. A label that is no tenant key, or a value its key refuses, throws LabelError naming the label.
 */
export function tenantTable(labels: Record<string, string>, netns: string): Record<string, unknown> {
  const table: Record<string, unknown> = { netns };
  const headers: Record<string, string> = {};
  for (const [label, value] of Object.entries(labels)) {
    if (!label.startsWith(LABEL_PREFIX) || label === ENABLE_LABEL || label === TENANT_LABEL) continue;
    if (label.startsWith(HEADER_PREFIX)) {
      headers[label.slice(HEADER_PREFIX.length)] = value;
      continue;
    }
    const key = label.slice(LABEL_PREFIX.length);
    if (key === "netns") throw new LabelError("the namespace is the container's own; it cannot be set", label);
    if (key === "headers") throw new LabelError(`a header is one label each, like ${HEADER_PREFIX}X-Plan=gold`, label);
    const s = TENANT_SETTINGS.find((s) => s.key === key);
    if (!s) {
      // checkTenantTable names the key and suggests the one meant.
      table[key] = value;
      continue;
    }
    let v: unknown = value;
    if (s.kind.flagType === "list") v = splitList(value);
    else if (s.kind.flagType === "boolean") {
      const b = value.trim().toLowerCase();
      if (b !== "true" && b !== "false") throw new LabelError(`${JSON.stringify(value)} is not true or false`, label);
      v = b === "true";
    }
    try {
      table[key] = s.kind.stored(v as never, key);
    } catch (e) {
      throw new LabelError((e as Error).message, label);
    }
  }
  if (Object.keys(headers).length) table.headers = headers;
  return table;
}

/** The label an Invalid's key path inside a tenant table stands for. */
function labelOf(at: Invalid["at"]): string | undefined {
  if (!Array.isArray(at) || at.length === 0) return undefined;
  if (at[0] === "headers" && at[1] !== undefined) return `${HEADER_PREFIX}${at[1]}`;
  return `${LABEL_PREFIX}${at[0]}`;
}

/**
 * The tenant name a container stands for: its own `nsproxy.tenant` label, else its name. A label that is no valid
 * tenant name throws LabelError naming the label; a container name that is none, naming no label.
 */
export function tenantNameOf(containerName: string, labels: Record<string, string>): string {
  const named = labels[TENANT_LABEL];
  if (named !== undefined) {
    if (!isValidTenantName(named)) throw new LabelError(`${JSON.stringify(named)} is not a valid tenant name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})`, TENANT_LABEL);
    return named;
  }
  if (!isValidTenantName(containerName)) {
    throw new LabelError(`its name is not a valid tenant name ([A-Za-z0-9][A-Za-z0-9._-]{0,63}); name the tenant with a label ${TENANT_LABEL}=NAME`);
  }
  return containerName;
}

/** The tenant `name` served in `netns` with these (own) labels, validated as `tenant add` validates and resolved against the defaults. */
export function containerTenant(name: string, netns: string, labels: Record<string, string>, loaded: Loaded): TenantSpec {
  const table = tenantTable(labels, netns);
  try {
    return resolveTenant(checkTenantTable(name, table), loaded.defaults, "container");
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    throw new LabelError(e.message, labelOf(e.at));
  }
}
