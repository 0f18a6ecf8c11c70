/* libnetns: the few namespace syscalls nsproxy needs, called through FFI from pinned worker threads.
 *
 * No C library: every call is a raw syscall, so the library has no NEEDED entry and no symbol
 * version, and one .so per architecture loads under glibc and musl alike (and under any glibc the
 * runtime itself runs on). Only Linux UAPI headers are included. The one symbol taken from the
 * process is `environ`, weakly, for nsx_exec.
 *
 * No state (but for one test-only fault switch, nsx_fault_fail_enter, and the syscall filter, which
 * is constant), no printing, no exiting.
 * Every function takes integers and NUL-terminated strings and returns a non-negative value on
 * success or -errno on failure (the kernel returns -errno itself: there is no errno variable here).
 * Every descriptor is O_CLOEXEC. Error text is the caller's business (src/netns/errno-text.ts).
 *
 * Build (build.ts): cc -O2 -Wall -Wextra -Werror -nostdlib -ffreestanding -fno-stack-protector -fPIC
 *   -shared -Wl,--no-undefined -o libnetns.so libnetns.c   (aarch64-linux-gnu-gcc for arm64)
 */
#include <asm/errno.h>
#include <asm/stat.h>
#include <asm/statfs.h>
#include <asm/unistd.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <asm/socket.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "libnetns: raw syscalls are written for x86-64 and aarch64 only"
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libnetns: little-endian only (port numbers are swapped to network order below)"
#endif

/* Socket ABI values not in the UAPI headers (libc defines them); the same on x86-64 and aarch64. */
#define NSX_AF_INET 2
#define NSX_AF_INET6 10
#define NSX_SOCK_STREAM 1

/* Returned when a path opens but is not a network namespace (for example the empty placeholder file
 * `ip netns add` creates before it bind-mounts the namespace, or /proc/PID/ns/mnt). */
#define NSX_ENOTNETNS EMEDIUMTYPE

/* One syscall, up to five arguments. Returns the kernel's value: >= 0, or -errno. */
static long sys5(long n, long a, long b, long c, long d, long e) {
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
#else
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory", "cc");
  return x0;
#endif
}

#define sys0(n) sys5((n), 0, 0, 0, 0, 0)
#define sys1(n, a) sys5((n), (long)(a), 0, 0, 0, 0)
#define sys2(n, a, b) sys5((n), (long)(a), (long)(b), 0, 0, 0)
#define sys3(n, a, b, c) sys5((n), (long)(a), (long)(b), (long)(c), 0, 0)

/* aarch64 has no open(2): openat with AT_FDCWD on both. */
static int sys_open(const char *path, int flags) { return (int)sys5(__NR_openat, AT_FDCWD, (long)path, flags, 0, 0); }
static void sys_close(int fd) { sys1(__NR_close, fd); }

static unsigned long cstrlen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

/* Open a network namespace file and check that it is one. Returns an fd or -errno. */
int nsx_open(const char *path) {
  int fd = sys_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fd;

  struct statfs sfs;
  long rc = sys2(__NR_fstatfs, fd, &sfs);
  if (rc < 0) {
    sys_close(fd);
    return (int)rc;
  }
  if ((unsigned long)sfs.f_type != (unsigned long)NSFS_MAGIC) {
    sys_close(fd);
    return -NSX_ENOTNETNS;
  }
  /* NS_GET_NSTYPE (Linux 4.11) says which kind of namespace this nsfs file is. */
  long type = sys2(__NR_ioctl, fd, NS_GET_NSTYPE);
  if (type < 0) {
    sys_close(fd);
    return (int)type;
  }
  if (type != CLONE_NEWNET) {
    sys_close(fd);
    return -NSX_ENOTNETNS;
  }
  return fd;
}

/* The calling thread's own network namespace, as an fd: the worker's way home. */
int nsx_open_self(void) { return nsx_open("/proc/thread-self/ns/net"); }

/* Fault injection for tests, the one piece of state here: the calling thread's next nsx_enter(fd)
 * into this fd fails. Per thread, so only the worker that armed it is affected, and used once.
 * Armed only by a source run with NSPROXY_FAULT_STRAND_TENANT set (src/faults.ts); the release binary
 * never calls it. Keyed by thread id rather than thread-local storage: TLS in a shared library needs
 * the C library's loader (__tls_get_addr), which this library does without. A slot is claimed with a
 * compare-and-swap on its tid and then written only by its own thread. */
#define NSX_FAULT_SLOTS 64
static struct {
  int tid; /* 0: free */
  int fd;
} fault_slots[NSX_FAULT_SLOTS];

int nsx_fault_fail_enter(int fd) {
  int tid = (int)sys0(__NR_gettid);
  int free_slot = -1;
  for (int i = 0; i < NSX_FAULT_SLOTS; i++) {
    int owner = __atomic_load_n(&fault_slots[i].tid, __ATOMIC_ACQUIRE);
    if (owner == tid) {
      __atomic_store_n(&fault_slots[i].fd, fd, __ATOMIC_RELEASE);
      return 0;
    }
    if (owner == 0 && free_slot < 0) free_slot = i;
  }
  for (int i = free_slot < 0 ? NSX_FAULT_SLOTS : free_slot; i < NSX_FAULT_SLOTS; i++) {
    int expected = 0;
    if (__atomic_compare_exchange_n(&fault_slots[i].tid, &expected, tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&fault_slots[i].fd, fd, __ATOMIC_RELEASE);
      return 0;
    }
  }
  return -ENOSPC;
}

/* True once, if the calling thread armed a fault for fd: the slot is freed as it fires. */
static int fault_fires(int fd) {
  int tid = (int)sys0(__NR_gettid);
  for (int i = 0; i < NSX_FAULT_SLOTS; i++) {
    if (__atomic_load_n(&fault_slots[i].tid, __ATOMIC_ACQUIRE) != tid) continue;
    if (__atomic_load_n(&fault_slots[i].fd, __ATOMIC_ACQUIRE) != fd) return 0;
    __atomic_store_n(&fault_slots[i].fd, -1, __ATOMIC_RELEASE);
    __atomic_store_n(&fault_slots[i].tid, 0, __ATOMIC_RELEASE);
    return 1;
  }
  return 0;
}

/* Move the calling thread into the network namespace behind fd. Returns 0 or -errno. */
int nsx_enter(int fd) {
  int nstype = CLONE_NEWNET;
  /* A real setns that the kernel refuses (a network namespace fd is not a UTS one: EINVAL), so the
   * thread stays where it is and the caller sees the errno a failed return home would give. */
  if (fd >= 0 && fault_fires(fd)) nstype = CLONE_NEWUTS;
  long rc = sys2(__NR_setns, fd, nstype);
  return rc < 0 ? (int)rc : 0;
}

int nsx_close(int fd) {
  long rc = sys1(__NR_close, fd);
  return rc < 0 ? (int)rc : 0;
}

/* Identity of a namespace: device and inode of its nsfs file. A namespace replaced under the same
 * path has another inode. Both fit in a double's 53 bits on every kernel seen (ino < 2^32). */
long long nsx_dev(int fd) {
  struct stat st;
  long rc = sys2(__NR_fstat, fd, &st);
  return rc < 0 ? rc : (long long)st.st_dev;
}

long long nsx_ino(int fd) {
  struct stat st;
  long rc = sys2(__NR_fstat, fd, &st);
  return rc < 0 ? rc : (long long)st.st_ino;
}

/* Turn on net.ipv4.tcp_migrate_req in the calling thread's current network namespace (kernel >= 5.14):
 * when a listener of a SO_REUSEPORT group closes, the connections waiting in its accept queue move to
 * another listener of the group instead of being reset. A replaced tenant's old listeners close right
 * after its new ones are bound; without this, a client connecting at that moment gets a reset.
 * Called inside the window (the thread is in the tenant's namespace: /proc/sys/net is per namespace).
 * Returns 0 or -errno (-ENOENT on kernels without the setting). */
int nsx_migrate_req_on(void) {
  int fd = sys_open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  long n = sys3(__NR_write, fd, "1", 1);
  sys_close(fd);
  return n == 1 ? 0 : (n < 0 ? (int)n : -EIO);
}

/* Address parsing with the rules of glibc's inet_pton (what the library used before): IPv4 is four
 * decimal parts 0-255 without leading zeros; IPv6 is up to eight groups of 1-4 hex digits, one "::",
 * an IPv4 tail; no zone ("%eth0"), no brackets. Returns 1 on success, 0 if not an address. */
static int parse_ipv4(const char *s, const char *end, unsigned char out[4]) {
  unsigned char tmp[4] = {0, 0, 0, 0};
  int part = 0, digits = 0;
  for (; s < end; s++) {
    char ch = *s;
    if (ch >= '0' && ch <= '9') {
      unsigned v = (unsigned)tmp[part] * 10 + (unsigned)(ch - '0');
      if (digits > 0 && tmp[part] == 0) return 0; /* leading zero */
      if (v > 255) return 0;
      tmp[part] = (unsigned char)v;
      digits++;
    } else if (ch == '.' && digits > 0) {
      if (part == 3) return 0;
      part++;
      digits = 0;
    } else {
      return 0;
    }
  }
  if (part != 3 || digits == 0) return 0;
  for (int i = 0; i < 4; i++) out[i] = tmp[i];
  return 1;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int parse_ipv6(const char *s, const char *end, unsigned char out[16]) {
  unsigned char tmp[16];
  for (int i = 0; i < 16; i++) tmp[i] = 0;
  int at = 0;     /* bytes written to tmp */
  int gap = -1;   /* where "::" stands, as a byte offset */
  if (s == end) return 0;
  if (*s == ':' && (++s == end || *s != ':')) return 0; /* a leading ':' only as "::" */
  const char *group = s;
  int digits = 0;
  unsigned val = 0;
  while (s < end) {
    char ch = *s++;
    int h = hex_value(ch);
    if (h >= 0) {
      if (digits == 4) return 0;
      val = (val << 4) | (unsigned)h;
      digits++;
      continue;
    }
    if (ch == ':') {
      group = s;
      if (digits == 0) {
        if (gap >= 0) return 0; /* a second "::" (or ":::") */
        gap = at;
        continue;
      }
      if (s == end) return 0; /* a trailing single ':' */
      if (at + 2 > 16) return 0;
      tmp[at++] = (unsigned char)(val >> 8);
      tmp[at++] = (unsigned char)val;
      digits = 0;
      val = 0;
      continue;
    }
    if (ch == '.' && at + 4 <= 16 && parse_ipv4(group, end, tmp + at)) {
      at += 4;
      digits = 0;
      break; /* the IPv4 tail ran to the end */
    }
    return 0;
  }
  if (digits > 0) {
    if (at + 2 > 16) return 0;
    tmp[at++] = (unsigned char)(val >> 8);
    tmp[at++] = (unsigned char)val;
  }
  if (gap >= 0) {
    if (at == 16) return 0; /* "::" must stand for at least one group */
    int tail = at - gap;
    for (int i = 1; i <= tail; i++) {
      tmp[16 - i] = tmp[at - i];
      tmp[at - i] = 0;
    }
    at = 16;
  }
  if (at != 16) return 0;
  for (int i = 0; i < 16; i++) out[i] = tmp[i];
  return 1;
}

/* An IPv4 or IPv6 literal and a port as a socket address. Returns its length, or -EINVAL. */
union nsx_sockaddr {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  unsigned char bytes[sizeof(struct sockaddr_in6)];
};
static int fill_sockaddr(const char *addr, int port, union nsx_sockaddr *sa, int *family) {
  if (port < 0 || port > 65535) return -EINVAL;
  for (unsigned i = 0; i < sizeof sa->bytes; i++) sa->bytes[i] = 0;
  /* Network byte order: both architectures here are little-endian (checked at the top). */
  unsigned short nport = (unsigned short)(((port & 0xff) << 8) | ((port >> 8) & 0xff));
  const char *end = addr + cstrlen(addr);
  if (parse_ipv4(addr, end, (unsigned char *)&sa->v4.sin_addr)) {
    *family = NSX_AF_INET;
    sa->v4.sin_family = NSX_AF_INET;
    sa->v4.sin_port = nport;
    return sizeof sa->v4;
  }
  if (parse_ipv6(addr, end, sa->v6.sin6_addr.s6_addr)) {
    *family = NSX_AF_INET6;
    sa->v6.sin6_family = NSX_AF_INET6;
    sa->v6.sin6_port = nport;
    return sizeof sa->v6;
  }
  return -EINVAL;
}

/* socket + bind on addr:port in the calling thread's current namespace, then close. Returns 0 or
 * -errno. Used after the runtime failed to listen, to learn the precise reason (EADDRNOTAVAIL for an
 * address that is not there, EADDRINUSE for a taken port). SO_REUSEADDR and SO_REUSEPORT as the
 * runtime's listener has them: a port in TIME_WAIT, or held by nsproxy's own listener in another
 * worker, must not read as taken (that hid the real cause, EMFILE, at 10,000 tenants). */
int nsx_probe_bind(const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;

  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_CLOEXEC, 0); /* SOCK_CLOEXEC == O_CLOEXEC */
  if (fd < 0) return fd;
  int one = 1;
  long rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one);
  if (rc == 0) rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEPORT, (long)&one, sizeof one);
  if (rc == 0 && family == NSX_AF_INET6) rc = sys5(__NR_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, (long)&one, sizeof one);
  if (rc == 0) rc = sys3(__NR_bind, fd, &sa, len);
  if (rc == 0) rc = sys2(__NR_listen, fd, 1);
  sys_close(fd);
  return rc < 0 ? (int)rc : 0;
}

/* Is addr:port free of every other socket in the calling thread's current namespace? socket + bind
 * with SO_REUSEADDR but WITHOUT SO_REUSEPORT, then close: the kernel refuses the bind (EADDRINUSE)
 * when any socket listens on an address that overlaps this one (the same address, the wildcard of its
 * family, or [::] without IPV6_ONLY for IPv4), whoever owns it: SO_REUSEPORT is how two listeners
 * share, so a probe without it sees what nsproxy's own listeners would silently share with. A TIME_WAIT
 * connection does not count (SO_REUSEADDR). IPv6 as the runtimes listen: dual-stack (IPV6_V6ONLY 0),
 * so [::] is refused when an IPv4 listener holds the port. Returns 0 or -errno. */
int nsx_probe_alone(const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;
  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_CLOEXEC, 0);
  if (fd < 0) return fd;
  int one = 1, zero = 0;
  long rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one);
  if (rc == 0 && family == NSX_AF_INET6) rc = sys5(__NR_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, (long)&zero, sizeof zero);
  if (rc == 0) rc = sys3(__NR_bind, fd, &sa, len);
  sys_close(fd);
  return rc < 0 ? (int)rc : 0;
}

/* Open the calling thread's current namespace's TCP socket table (which 0: /proc/thread-self/net/tcp,
 * 1: tcp6) and return the fd, or -errno. A proc net file holds on to the namespace it was opened in:
 * read it later, from home, with nsx_read, and it still lists the tenant namespace's sockets. Fixed
 * paths: nothing else can be opened this way inside the window. */
int nsx_open_net_table(int which) {
  if (which != 0 && which != 1) return -EINVAL;
  return sys_open(which ? "/proc/thread-self/net/tcp6" : "/proc/thread-self/net/tcp", O_RDONLY | O_CLOEXEC);
}

/* read(2) until len bytes or end of file: the number read, or -errno. */
int nsx_read(int fd, unsigned char *buf, int len) {
  int got = 0;
  while (got < len) {
    long n = sys3(__NR_read, fd, buf + got, len - got);
    if (n < 0 && n != -EINTR) return (int)n;
    if (n == 0) break;
    if (n > 0) got += (int)n;
  }
  return got;
}

/* Ingress: in the network namespace behind nsfd, a non-blocking socket and connect(addr:port), then
 * back to homefd, all in C: no JavaScript ever runs inside the namespace. The socket belongs to the
 * tenant's namespace for its whole life. Returns the fd (connected, or with the connect in progress),
 * -errno when the socket or connect failed at once (ECONNREFUSED on loopback is immediate), or
 * NSX_ESTRANDED when the thread could not return home (it must never be used again). */
#define NSX_ESTRANDED (-4000)
int nsx_so_error(int fd);
int nsx_connect_in(int nsfd, int homefd, const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  if (port == 0) return -EINVAL;
  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;
  long rc = sys2(__NR_setns, nsfd, CLONE_NEWNET);
  if (rc < 0) return (int)rc;
  /* ---- inside the tenant's namespace ---- */
  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_NONBLOCK | O_CLOEXEC, 0); /* SOCK_NONBLOCK == O_NONBLOCK */
  if (fd >= 0) {
    rc = sys3(__NR_connect, fd, &sa, len);
    if (rc < 0 && rc != -EINPROGRESS) {
      sys_close(fd);
      fd = (int)rc;
    }
  }
  int nstype = CLONE_NEWNET;
  if (homefd >= 0 && fault_fires(homefd)) nstype = CLONE_NEWUTS; /* the strand fault, as in nsx_enter */
  if (sys2(__NR_setns, homefd, nstype) < 0) {
    if (fd >= 0) sys_close(fd);
    return NSX_ESTRANDED;
  }
  /* ---- home ---- */
  /* A refusal on the namespace's loopback is usually known by now: report it with its errno rather than
   * as a socket that opens and closes (the runtime's adopted socket cannot tell why). */
  if (fd >= 0) {
    struct {
      int fd;
      short events, revents;
    } p = {fd, 4 /* POLLOUT */, 0};
    struct {
      long sec, nsec;
    } zero = {0, 0};
    if (sys5(__NR_ppoll, (long)&p, 1, (long)&zero, 0, 0) == 1) {
      int err = nsx_so_error(fd);
      if (err > 0) {
        sys_close(fd);
        return -err;
      }
    }
  }
  return fd;
}

/* Can a client inside the namespace behind nsfd reach addr:port at all? A UDP socket's connect there is a
 * route lookup and sends nothing: ENETUNREACH when the address's interface is down (a fresh `ip netns add`
 * namespace has lo down, yet 127.0.0.1 binds and listens), 0 when a client would get through to the
 * listener. setns, socket, connect, close, setns back to homefd, all in C. Returns 0, -errno, or
 * NSX_ESTRANDED. */
#define NSX_SOCK_DGRAM 2
int nsx_route_in(int nsfd, int homefd, const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;
  long rc = sys2(__NR_setns, nsfd, CLONE_NEWNET);
  if (rc < 0) return (int)rc;
  /* ---- inside the namespace ---- */
  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_DGRAM | O_CLOEXEC, 0);
  rc = fd < 0 ? fd : sys3(__NR_connect, fd, &sa, len);
  if (fd >= 0) sys_close(fd);
  if (sys2(__NR_setns, homefd, CLONE_NEWNET) < 0) return NSX_ESTRANDED;
  /* ---- home ---- */
  return rc < 0 ? (int)rc : 0;
}

/* The pending error of a socket (SO_ERROR): 0, or the errno of a failed non-blocking connect. Negative:
 * getsockopt itself failed. */
int nsx_so_error(int fd) {
  int err = 0;
  int len = sizeof err;
  long rc = sys5(__NR_getsockopt, fd, SOL_SOCKET, SO_ERROR, (long)&err, (long)&len);
  return rc < 0 ? (int)rc : err;
}

/* ---- The syscall filter ----
 *
 * nsproxy holds CAP_SYS_ADMIN for one reason: setns into tenant network namespaces. That capability
 * also lets a process mount, load BPF, trace, create namespaces and more; a memory-safety bug in the
 * runtime or TLS library would inherit all of it. This filter refuses, for every thread, the calls
 * nsproxy never makes that the capabilities it holds would otherwise allow (a deny list: the runtimes'
 * own needs change from release to release, a list of what is forbidden does not). Refused calls
 * fail with EPERM, as a missing capability would; nothing is killed but a foreign architecture.
 *
 * Each check is a self-contained block that ends in a return or falls through to the next with the
 * syscall number still in the accumulator, so the program needs no jump offsets computed by hand. */

/* Unified syscall numbers (the same on every architecture since Linux 5.1) newer than some headers. */
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif

#if defined(__x86_64__)
#define NSX_AUDIT_ARCH AUDIT_ARCH_X86_64
#else
#define NSX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Every flag that makes a new namespace. CLONE_NEWTIME (0x80) only for unshare: in clone's flags that
 * bit is part of the exit signal (CSIGNAL), which fork and thread creation set. */
#define NSX_CLONE_NEW (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
#define NSX_UNSHARE_NEW (NSX_CLONE_NEW | 0x80 /* CLONE_NEWTIME */)

/* The low 32 bits of argument i (little-endian: checked at the top). Every argument checked below is
 * an int or is truncated to 32 bits by the kernel (clone's and unshare's flags). */
#define NSX_ARG_LO(i) (__builtin_offsetof(struct seccomp_data, args) + 8 * (i))
#define NSX_LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define NSX_RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define NSX_ERRNO(e) NSX_RET(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
/* Two instructions: syscall nr fails with EPERM; any other falls through to the next check. */
#define NSX_DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), NSX_ERRNO(EPERM)

static const struct sock_filter nsx_filter[] = {
    /* The same number means another call on another ABI: anything but this library's own
     * architecture (i386 through int 0x80 on x86-64, say) is an attack, never nsproxy. */
    NSX_LD(__builtin_offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NSX_AUDIT_ARCH, 1, 0),
    NSX_RET(SECCOMP_RET_KILL_PROCESS),
    NSX_LD(__builtin_offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
    /* x32 calls carry the x86-64 arch with bit 30 set in the number: the same reasoning. */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1),
    NSX_RET(SECCOMP_RET_KILL_PROCESS),
#endif

    /* clone: threads (runtime threads, a replaced worker) and fork pass; a new namespace does not. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4),
    NSX_LD(NSX_ARG_LO(0)),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSX_CLONE_NEW, 0, 1),
    NSX_ERRNO(EPERM),
    NSX_RET(SECCOMP_RET_ALLOW),
    /* clone3 passes its flags in memory a filter cannot read: "not implemented", and glibc (>= 2.34,
     * pthread_create and posix_spawn) falls back to clone, which is checked above. musl uses clone. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
    NSX_ERRNO(ENOSYS),
    /* unshare of a namespace: a new user namespace is the usual first step of a kernel exploit, and
     * nsproxy never leaves the namespaces it starts in but through setns. Other unshare flags pass. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 4),
    NSX_LD(NSX_ARG_LO(0)),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NSX_UNSHARE_NEW, 0, 1),
    NSX_ERRNO(EPERM),
    NSX_RET(SECCOMP_RET_ALLOW),
    /* setns: network namespaces only (libnetns always says CLONE_NEWNET); joining a tenant's mount,
     * user or PID namespace would be a way into its container. EINVAL, what the kernel itself answers
     * for a type that does not match the fd (libnetns's strand fault relies on exactly that). */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setns, 0, 4),
    NSX_LD(NSX_ARG_LO(1)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CLONE_NEWNET, 1, 0),
    NSX_ERRNO(EINVAL),
    NSX_RET(SECCOMP_RET_ALLOW),
    /* personality: only the query (0xffffffff) and the default (PER_LINUX); another persona (no ASLR,
     * READ_IMPLIES_EXEC) only weakens the process. What systemd's LockPersonality= allows. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, 5),
    NSX_LD(NSX_ARG_LO(0)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
    NSX_ERRNO(EPERM),
    NSX_RET(SECCOMP_RET_ALLOW),

    /* Mounts (CAP_SYS_ADMIN): a mount over a tenant's or the host's files, or a remount read-write. */
    NSX_DENY(__NR_mount),
    NSX_DENY(__NR_umount2),
    NSX_DENY(__NR_pivot_root),
    NSX_DENY(__NR_move_mount),
    NSX_DENY(__NR_fsopen),
    NSX_DENY(__NR_fsconfig),
    NSX_DENY(__NR_fsmount),
    NSX_DENY(__NR_fspick),
    NSX_DENY(__NR_open_tree),
    NSX_DENY(__NR_open_tree_attr),
    NSX_DENY(__NR_mount_setattr),
    /* Replacing the kernel (CAP_SYS_BOOT). */
    NSX_DENY(__NR_kexec_load),
    NSX_DENY(__NR_kexec_file_load),
    /* Loading code into the kernel (CAP_SYS_MODULE). */
    NSX_DENY(__NR_init_module),
    NSX_DENY(__NR_finit_module),
    NSX_DENY(__NR_delete_module),
    /* BPF programs run in the kernel (CAP_SYS_ADMIN / CAP_BPF); a large attack surface of its own. */
    NSX_DENY(__NR_bpf),
    /* Reading or writing another process's memory or descriptors (CAP_SYS_PTRACE, or a same-uid peer). */
    NSX_DENY(__NR_ptrace),
    NSX_DENY(__NR_process_vm_readv),
    NSX_DENY(__NR_process_vm_writev),
    NSX_DENY(__NR_pidfd_getfd),
    NSX_DENY(__NR_process_madvise),
    NSX_DENY(__NR_kcmp),
    /* Swap, reboot (CAP_SYS_ADMIN, CAP_SYS_BOOT). */
    NSX_DENY(__NR_swapon),
    NSX_DENY(__NR_swapoff),
    NSX_DENY(__NR_reboot),
    /* The host's hostname: nsproxy stays in the host's UTS namespace (CAP_SYS_ADMIN). */
    NSX_DENY(__NR_sethostname),
    NSX_DENY(__NR_setdomainname),
    /* Kernel keyrings: other services' secrets, and a history of kernel bugs. */
    NSX_DENY(__NR_keyctl),
    NSX_DENY(__NR_add_key),
    NSX_DENY(__NR_request_key),
    /* Performance counters: kernel addresses and side channels (CAP_PERFMON / CAP_SYS_ADMIN). */
    NSX_DENY(__NR_perf_event_open),
    /* Opening any file by handle, bypassing paths and mounts (CAP_DAC_READ_SEARCH: the "shocker"
     * container escape); and the call that makes handles. */
    NSX_DENY(__NR_open_by_handle_at),
    NSX_DENY(__NR_name_to_handle_at),
    /* Watching every file access of the host (CAP_SYS_ADMIN). */
    NSX_DENY(__NR_fanotify_init),
    /* Process accounting to a file of the caller's choice (CAP_SYS_PACCT). */
    NSX_DENY(__NR_acct),
    /* The host's clock (CAP_SYS_TIME): TLS certificate validity and every log's time depend on it. */
    NSX_DENY(__NR_settimeofday),
    NSX_DENY(__NR_clock_settime),
    NSX_DENY(__NR_clock_adjtime),
    NSX_DENY(__NR_adjtimex),
    /* Disk quotas (CAP_SYS_ADMIN). */
    NSX_DENY(__NR_quotactl),
    NSX_DENY(__NR_quotactl_fd),
    /* Kernel profiling buffers (CAP_SYS_ADMIN); gone from recent kernels, refused on older ones. */
    NSX_DENY(__NR_lookup_dcookie),
    /* Page-fault handling in user space: the classic way to widen a kernel race. */
    NSX_DENY(__NR_userfaultfd),
    /* The kernel log (CAP_SYSLOG / CAP_SYS_ADMIN): kernel addresses. */
    NSX_DENY(__NR_syslog),
    /* Hanging up the terminal of other sessions (CAP_SYS_TTY_CONFIG). */
    NSX_DENY(__NR_vhangup),
#if defined(__x86_64__)
    /* I/O ports (CAP_SYS_RAWIO): direct hardware access. x86 only. */
    NSX_DENY(__NR_iopl),
    NSX_DENY(__NR_ioperm),
    /* Loading an old a.out library: an old exploit path; x86 only. */
    NSX_DENY(__NR_uselib),
#endif
    NSX_RET(SECCOMP_RET_ALLOW),
};

/* Install the filter on every thread of the process at once (TSYNC), and on every thread created
 * after: call it once from the main thread. Needs CAP_SYS_ADMIN or no_new_privs: without the
 * capability, no_new_privs is set first (it only stops an execve from gaining privileges, and nsproxy
 * executes nothing after start). Returns 0 or -errno: -EINVAL on a kernel without seccomp filters,
 * -ESRCH when a thread could not be synchronised (one with a filter of its own: never nsproxy's). */
int nsx_seccomp_install(void) {
  struct sock_fprog prog = {sizeof nsx_filter / sizeof nsx_filter[0], (struct sock_filter *)nsx_filter};
  long rc = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc == -EACCES) {
    rc = sys5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (rc == 0) rc = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  }
  if (rc > 0) return -ESRCH; /* TSYNC names the thread that refused by returning its id */
  return (int)rc;
}

/* Test only (NSPROXY_FAULT_SECCOMP_PROBE, src/faults.ts): make, for real, a call the filter refuses,
 * chosen so that it is harmless if the filter is missing. Returns the call's result, 0 or -errno:
 *   0  unshare(CLONE_NEWNET): EPERM filtered; unfiltered the thread gets a new namespace and is put
 *      back at once into the one it was in
 *   1  mount of a tmpfs on a path that does not exist: EPERM filtered, ENOENT unfiltered
 *   2  clone(CLONE_NEWNET | CLONE_THREAD) without CLONE_SIGHAND: EPERM filtered, EINVAL unfiltered
 *      (the kernel refuses that combination before creating anything)
 *   3  clone3 with no arguments: ENOSYS filtered, EFAULT or EINVAL unfiltered */
int nsx_seccomp_probe(int which) {
  if (which == 0) {
    int home = nsx_open_self();
    if (home < 0) return home;
    long rc = sys1(__NR_unshare, CLONE_NEWNET);
    if (rc == 0 && sys2(__NR_setns, home, CLONE_NEWNET) < 0) rc = NSX_ESTRANDED;
    sys_close(home);
    return (int)rc;
  }
  if (which == 1) return (int)sys5(__NR_mount, (long)"none", (long)"/nonexistent/nsproxy-seccomp-probe", (long)"tmpfs", 0, 0);
  if (which == 2) return (int)sys5(__NR_clone, CLONE_NEWNET | CLONE_THREAD, 0, 0, 0, 0);
  if (which == 3) return (int)sys2(__NR_clone3, 0, 0);
  return -EINVAL;
}

/* The process's environment, from whichever C library loaded us (glibc and musl both define it).
 * Weak: taking it adds no NEEDED entry and no symbol version. */
extern char **environ __attribute__((weak));

#define NSX_ARGV_MAX 4096
#define NSX_ENV_MAX 4096
#define NSX_ENV_SET_MAX 64

/* Length of the NAME in "NAME=VALUE" (0 if there is no '='). */
static unsigned long name_len(const char *entry) {
  unsigned long n = 0;
  while (entry[n] && entry[n] != '=') n++;
  return entry[n] == '=' ? n : 0;
}

static int same_name(const char *a, const char *b, unsigned long n) {
  for (unsigned long i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return b[n] == '=';
}

/* Replace the process image: the environment with each NAME=VALUE of env (envc entries,
 * NUL-separated) set as setenv would (an existing NAME replaced in place, a new one appended), then
 * execve(path, argv) with argc NUL-separated arguments. Only returns on failure, with -errno; the
 * environment of this process is then left as it was. Used once at start-up to set runtime options
 * that must be in the environment before the runtime initialises; exec keeps the PID, so supervisors
 * and signals see no difference. Runs on the main thread (~65 kB of stack for the two arrays). */
int nsx_exec(const char *path, const char *argv_packed, int argc, const char *env_packed, int envc) {
  if (argc < 1 || argc > NSX_ARGV_MAX || envc < 0 || envc > NSX_ENV_SET_MAX) return -EINVAL;
  if (!&environ) return -ENOSYS; /* no C library in the process: nothing to inherit from */

  char *envp[NSX_ENV_MAX + NSX_ENV_SET_MAX + 1];
  int n = 0;
  for (char **e = environ; e && *e; e++) {
    if (n == NSX_ENV_MAX) return -E2BIG;
    envp[n++] = *e;
  }
  const char *p = env_packed;
  for (int i = 0; i < envc; i++) {
    unsigned long len = name_len(p);
    if (len == 0 || len >= 128) return -EINVAL;
    int k = 0;
    while (k < n && !same_name(p, envp[k], len)) k++;
    if (k == n) n++;
    envp[k] = (char *)p;
    p += cstrlen(p) + 1;
  }
  envp[n] = 0;

  char *argv[NSX_ARGV_MAX + 1];
  p = argv_packed;
  for (int i = 0; i < argc; i++) {
    argv[i] = (char *)p;
    p += cstrlen(p) + 1;
  }
  argv[argc] = 0;
  return (int)sys3(__NR_execve, path, argv, envp);
}

/* systemd's notify protocol: one datagram `msg` (len bytes) to the unix socket at `path` ($NOTIFY_SOCKET;
 * a leading '@' names an abstract socket). Returns 0 or -errno. Not in a window: the main thread's. */
#define NSX_AF_UNIX 1
#define NSX_SOCK_DGRAM 2
int nsx_notify(const char *path, const char *msg, int len) {
  struct {
    unsigned short family;
    char path[108];
  } sa;
  unsigned long n = cstrlen(path);
  if (n == 0 || n >= sizeof sa.path || len < 0) return -EINVAL;
  sa.family = NSX_AF_UNIX;
  for (unsigned long i = 0; i < n; i++) sa.path[i] = path[i];
  sa.path[n] = 0;
  if (sa.path[0] == '@') sa.path[0] = 0;
  int fd = (int)sys3(__NR_socket, NSX_AF_UNIX, NSX_SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) return fd;
  /* An abstract name is exactly its bytes; a path includes its NUL. connect + write: five arguments at most. */
  long salen = (long)(sizeof sa.family + n + (path[0] == '@' ? 0 : 1));
  long rc = sys3(__NR_connect, fd, &sa, salen);
  if (rc == 0) rc = sys3(__NR_write, fd, msg, len);
  sys_close(fd);
  return rc < 0 ? (int)rc : 0;
}

#define NSX_GROUPS_MAX 256
/* nsx_drop_exec's flags. */
#define NSX_DROP_BOUNDING 1 /* reduce the bounding set too (needs CAP_SETPCAP, which root has) */

static long prctl5(long option, long a, long b, long c, long d) { return sys5(__NR_prctl, option, a, b, c, d); }

/* A little-endian unsigned integer of `n` bytes from a byte string (no alignment assumed). */
static unsigned long long read_le(const unsigned char *b, int n) {
  unsigned long long v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

/* Run as `uid`/`gid` (with `ngroups` supplementary groups, 4 bytes each, little-endian) holding only the
 * capabilities of `keep` (a 64-bit mask, 8 bytes little-endian), with no_new_privs set, then exec as
 * nsx_exec does. uid < 0: keep the user (a process started as a user with ambient capabilities, by
 * systemd or setpriv, only gives up what it does not need).
 *
 * Why in C, right before execve: credentials and no_new_privs belong to each thread, and these are raw
 * syscalls (no C library to broadcast them to every thread), so they change the calling thread only.
 * execve keeps only that thread, and every thread the new image starts inherits its credentials: the
 * whole process ends up with the same ones. The order is the kernel's:
 *   1. the bounding set first, while CAP_SETPCAP is still effective;
 *   2. PR_SET_KEEPCAPS, so that setresuid away from root keeps the permitted set (it clears the effective);
 *   3. setgroups, setresgid, then setresuid (after it, changing groups would need CAP_SETGID);
 *   4. capset: effective = permitted = inheritable = keep (everything else gone for good);
 *   5. the ambient set = keep: what survives execve of a file without file capabilities as a non-root user;
 *   6. no_new_privs: exec can gain nothing (setuid binaries, file capabilities) from here on.
 * Returns only on failure, with -errno, possibly halfway: the calling thread may have changed already
 * and the caller must exit. */
int nsx_drop_exec(int uid, int gid, const unsigned char *groups, int ngroups, const unsigned char *keep_le, int flags, const char *path,
                  const char *argv_packed, int argc, const char *env_packed, int envc) {
  if (ngroups < 0 || ngroups > NSX_GROUPS_MAX || argc < 1 || argc > NSX_ARGV_MAX || envc < 0 || envc > NSX_ENV_SET_MAX) return -EINVAL;
  unsigned long long keep = read_le(keep_le, 8);
  long rc;

  if (flags & NSX_DROP_BOUNDING) {
    /* PR_CAPBSET_READ says EINVAL past the last capability this kernel knows. */
    for (int cap = 0; cap < 64 && prctl5(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
      if (keep & (1ULL << cap)) continue;
      rc = prctl5(PR_CAPBSET_DROP, cap, 0, 0, 0);
      if (rc < 0) return (int)rc;
    }
  }

  if (uid >= 0) {
    unsigned int gids[NSX_GROUPS_MAX];
    for (int i = 0; i < ngroups; i++) gids[i] = (unsigned int)read_le(groups + 4 * i, 4);
    if ((rc = prctl5(PR_SET_KEEPCAPS, 1, 0, 0, 0)) < 0) return (int)rc;
    if ((rc = sys2(__NR_setgroups, ngroups, gids)) < 0) return (int)rc;
    if ((rc = sys3(__NR_setresgid, gid, gid, gid)) < 0) return (int)rc;
    if ((rc = sys3(__NR_setresuid, uid, uid, uid)) < 0) return (int)rc;
  }

  struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    unsigned int half = (unsigned int)(keep >> (32 * i));
    data[i].effective = half;
    data[i].permitted = half;
    data[i].inheritable = half;
  }
  if ((rc = sys2(__NR_capset, &head, data)) < 0) return (int)rc;

  if ((rc = prctl5(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) < 0) return (int)rc;
  for (int cap = 0; cap < 64; cap++) {
    if (!(keep & (1ULL << cap))) continue;
    if ((rc = prctl5(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) < 0) return (int)rc;
  }
  if ((rc = prctl5(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) return (int)rc;

  return nsx_exec(path, argv_packed, argc, env_packed, envc);
}
