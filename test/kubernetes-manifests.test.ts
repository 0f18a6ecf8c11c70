// deploy/kubernetes/ checked against the Kubernetes API schemas (kubernetes-models), and its nsproxy.toml and plugin conf against nsproxy's own rules.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { checkEntry } from "../src/cni/install.ts";
import { loadLayered } from "../src/config/load.ts";
import { checkTenantTable } from "../src/config/tenant-table.ts";

const DIR = `${import.meta.dir}/../deploy/kubernetes`;
const MODELS: Record<string, new (data: never) => { validate(): void }> = { ConfigMap, Namespace, DaemonSet };

type Doc = { kind: string; metadata: { name: string }; [k: string]: unknown };
const docs: Doc[] = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .flatMap((f) => [Bun.YAML.parse(readFileSync(`${DIR}/${f}`, "utf8"))].flat() as Doc[]);
const find = (kind: string) => docs.find((d) => d.kind === kind)!;

function validate(doc: Doc): void {
  const Model = MODELS[doc.kind];
  if (!Model) throw new Error(`no schema here for kind ${doc.kind}`);
  new Model(doc as never).validate();
}

describe("deploy/kubernetes", () => {
  test("every object validates against its Kubernetes API schema", () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(["ConfigMap", "DaemonSet", "Namespace"]);
    for (const d of docs) validate(d);
  });

  // The schemas allow unknown fields (as the API server does without strict field validation): the test below
  // reads every field that matters by its exact name, so a misspelt one fails there.
  test("the validator does refuse a missing required field and a wrong type (so the test above means something)", () => {
    const ds = structuredClone(find("DaemonSet")) as any;
    delete ds.spec.template.spec.containers[0].name;
    expect(() => validate(ds)).toThrow("name");
    const typed = structuredClone(find("DaemonSet")) as any;
    typed.spec.template.spec.containers[0].securityContext.privileged = "yes";
    expect(() => validate(typed)).toThrow();
  });

  test("the DaemonSet: capabilities not privileged, netns directories with HostToContainer, no hostPID, host paths the plugin shares", () => {
    const pod = (find("DaemonSet") as any).spec.template.spec;
    const daemon = pod.containers.find((c: any) => c.name === "nsproxy");
    expect(daemon.securityContext.privileged).toBe(false);
    expect(daemon.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["SYS_ADMIN", "NET_BIND_SERVICE"] });
    expect(pod.hostPID).toBeUndefined();
    const mount = (name: string) => daemon.volumeMounts.find((m: any) => m.mountPath === name);
    for (const dir of ["/run/netns", "/var/run/netns"]) expect(mount(dir).mountPropagation).toBe("HostToContainer");
    const hostPath = (name: string) => pod.volumes.find((v: any) => v.name === name).hostPath.path;
    expect(hostPath(mount("/run/nsproxy").name)).toBe("/run/nsproxy");
    const installer = pod.containers.find((c: any) => c.name === "install-cni");
    expect(installer.args.slice(0, 2)).toEqual(["cni", "install"]);
    expect(installer.securityContext.capabilities).toEqual({ drop: ["ALL"] });
  });

  test("the ConfigMap's nsproxy.toml loads as run would load it, and its plugin conf as the plugin reads it", () => {
    const data = (find("ConfigMap") as any).data as Record<string, string>;
    const loaded = loadLayered({ source: data["nsproxy.toml"]! });
    expect(loaded.config.adminSocket).toBe("/run/nsproxy/admin.sock");
    const entry = JSON.parse(data["cni-plugin.json"]!);
    expect(entry.adminSocket).toBe(loaded.config.adminSocket);
    checkEntry(entry);
    checkTenantTable("default.web-1", { ...entry.tenant, netns: "/var/run/netns/cni-1" });
  });
});
