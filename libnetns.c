/* libnetns: the few namespace syscalls nsproxy needs, called through bun:ffi from pinned worker threads.
 *
 * No state (but for one test-only fault switch, nsx_fault_fail_enter), no printing, no exiting.
 * Every function takes integers and NUL-terminated strings and returns a non-negative value on
 * success or -errno on failure. Every descriptor is O_CLOEXEC.
 * Build: cc -O2 -Wall -Wextra -Werror -fPIC -shared -o libnetns.so libnetns.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* Returned when a path opens but is not a network namespace (for example the empty placeholder file
 * `ip netns add` creates before it bind-mounts the namespace, or /proc/PID/ns/mnt). */
#define NSX_ENOTNETNS EMEDIUMTYPE

/* Open a network namespace file and check that it is one. Returns an fd or -errno. */
int nsx_open(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;

  struct statfs sfs;
  if (fstatfs(fd, &sfs) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if ((unsigned long)sfs.f_type != (unsigned long)NSFS_MAGIC) {
    close(fd);
    return -NSX_ENOTNETNS;
  }
  /* NS_GET_NSTYPE (Linux 4.11) says which kind of namespace this nsfs file is. */
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (type != CLONE_NEWNET) {
    close(fd);
    return -NSX_ENOTNETNS;
  }
  return fd;
}

/* The calling thread's own network namespace, as an fd: the worker's way home. */
int nsx_open_self(void) { return nsx_open("/proc/thread-self/ns/net"); }

/* Fault injection for tests, the one piece of state here: the calling thread's next nsx_enter(fd)
 * into this fd fails. Thread-local, so only the worker that armed it is affected, and used once.
 * Armed only by a source run with NSPROXY_FAULT_STRAND_TENANT set (src/faults.ts); the release binary
 * never calls it. */
static __thread int fault_fail_enter_fd = -1;

int nsx_fault_fail_enter(int fd) {
  fault_fail_enter_fd = fd;
  return 0;
}

/* Move the calling thread into the network namespace behind fd. Returns 0 or -errno. */
int nsx_enter(int fd) {
  int nstype = CLONE_NEWNET;
  if (fd >= 0 && fd == fault_fail_enter_fd) {
    fault_fail_enter_fd = -1;
    /* A real setns that the kernel refuses (a network namespace fd is not a UTS one: EINVAL), so the
     * thread stays where it is and the caller sees the errno a failed return home would give. */
    nstype = CLONE_NEWUTS;
  }
  return setns(fd, nstype) < 0 ? -errno : 0;
}

int nsx_close(int fd) { return close(fd) < 0 ? -errno : 0; }

/* Identity of a namespace: device and inode of its nsfs file. A namespace replaced under the same
 * path has another inode. Both fit in a double's 53 bits on every kernel seen (ino < 2^32). */
long long nsx_dev(int fd) {
  struct stat st;
  return fstat(fd, &st) < 0 ? -errno : (long long)st.st_dev;
}

long long nsx_ino(int fd) {
  struct stat st;
  return fstat(fd, &st) < 0 ? -errno : (long long)st.st_ino;
}

/* socket + bind on addr:port in the calling thread's current namespace, then close. Returns 0 or
 * -errno. Used after the runtime failed to listen, to learn the precise reason (EADDRNOTAVAIL for an
 * address that is not there, EADDRINUSE for a taken port). SO_REUSEADDR and SO_REUSEPORT as the
 * runtime's listener has them: a port in TIME_WAIT, or held by nsproxy's own listener in another
 * worker, must not read as taken (that hid the real cause, EMFILE, at 10,000 tenants). */
/* Turn on net.ipv4.tcp_migrate_req in the calling thread's current network namespace (kernel >= 5.14):
 * when a listener of a SO_REUSEPORT group closes, the connections waiting in its accept queue move to
 * another listener of the group instead of being reset. A replaced tenant's old listeners close right
 * after its new ones are bound; without this, a client connecting at that moment gets a reset.
 * Called inside the window (the thread is in the tenant's namespace: /proc/sys/net is per namespace).
 * Returns 0 or -errno (-ENOENT on kernels without the setting). */
int nsx_migrate_req_on(void) {
  int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, "1", 1);
  int err = n == 1 ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return -err;
}

int nsx_probe_bind(const char *addr, int port) {
  union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } sa;
  socklen_t len;
  int family;

  if (port < 0 || port > 65535) return -EINVAL;
  memset(&sa, 0, sizeof sa);
  if (inet_pton(AF_INET, addr, &sa.v4.sin_addr) == 1) {
    family = AF_INET;
    sa.v4.sin_family = AF_INET;
    sa.v4.sin_port = htons((unsigned short)port);
    len = sizeof sa.v4;
  } else if (inet_pton(AF_INET6, addr, &sa.v6.sin6_addr) == 1) {
    family = AF_INET6;
    sa.v6.sin6_family = AF_INET6;
    sa.v6.sin6_port = htons((unsigned short)port);
    len = sizeof sa.v6;
  } else {
    return -EINVAL;
  }

  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  int rc = bind(fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0;
  if (rc == 0 && listen(fd, 1) < 0) rc = -errno;
  close(fd);
  return rc;
}

/* Text for an errno value; strerror_r (GNU) writes into a per-thread buffer, so workers do not race. */
const char *nsx_strerror(int err) {
  static __thread char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

/* Replace the process image: setenv each NAME=VALUE of env (envc entries, NUL-separated), then
 * execv(path, argv) with argc NUL-separated arguments. Only returns on failure, with -errno.
 * Used once at start-up to set runtime options that must be in the environment before the runtime
 * initialises; exec keeps the PID, so supervisors and signals see no difference. */
int nsx_exec(const char *path, const char *argv_packed, int argc, const char *env_packed, int envc) {
  if (argc < 1 || argc > 4096 || envc < 0 || envc > 64) return -EINVAL;
  const char *p = env_packed;
  for (int i = 0; i < envc; i++) {
    const char *eq = strchr(p, '=');
    if (!eq) return -EINVAL;
    char name[128];
    size_t n = (size_t)(eq - p);
    if (n == 0 || n >= sizeof name) return -EINVAL;
    memcpy(name, p, n);
    name[n] = '\0';
    if (setenv(name, eq + 1, 1) < 0) return -errno;
    p += strlen(p) + 1;
  }
  char *argv[4097];
  p = argv_packed;
  for (int i = 0; i < argc; i++) {
    argv[i] = (char *)p;
    p += strlen(p) + 1;
  }
  argv[argc] = NULL;
  execv(path, argv);
  return -errno;
}
