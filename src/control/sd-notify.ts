// systemd's readiness protocol (sd_notify): READY=1 at start, and after an upgrade MAINPID= so the unit follows the successor.
import { logger } from "../log.ts";
import { errorText, notifyRaw } from "../netns/native.ts";

/**
 * Send `fields` (KEY=value lines) to $NOTIFY_SOCKET, when systemd set it (Type=notify). A successor
 * sends MAINPID= itself, so the unit needs NotifyAccess=all (README). A failure is logged, never fatal:
 * the daemon serves either way.
 */
export function sdNotify(fields: Record<string, string | number>, socket = process.env.NOTIFY_SOCKET): boolean {
  if (!socket) return false;
  const message = Object.entries(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  const rc = notifyRaw(socket, `${message}\n`);
  if (rc < 0) logger.warn(`sd_notify to ${socket} (${message.replace(/\n/g, ", ")}): ${errorText(-rc)}`);
  return rc === 0;
}
