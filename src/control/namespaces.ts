// The real Namespaces: libnetns for opening and identifying, stat for following, /proc for the thread check and socket owners.
import { statSync } from "node:fs";
import { closeFd, netnsIdentity, openNetns } from "../netns/native.ts";
import { socketOwner } from "../netns/socket-owner.ts";
import { strayThreads } from "../netns/threads.ts";
import type { Namespaces } from "./seams.ts";

export const kernelNamespaces: Namespaces = {
  open(ref) {
    const fd = openNetns(ref);
    try {
      return { fd, identity: netnsIdentity(fd, ref) };
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  },
  identityAt(path) {
    // As fstat on an opened fd reports it; any error but "gone" says nothing rather than detach a tenant.
    try {
      const st = statSync(path);
      return `${st.dev}:${st.ino}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === "ENOENT" || code === "ENOTDIR" ? undefined : null;
    }
  },
  close: closeFd,
  socketOwner,
  strayThreads,
};
