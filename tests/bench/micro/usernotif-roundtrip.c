// Round trip of a seccomp user notification (SECCOMP_RET_USER_NOTIF on
// getppid, answered by the parent), optionally with
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP. Usage: usernotif-roundtrip n|s TRACERCPU TRACEECPU
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/audit.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
int main(int argc,char**argv){int N=100000; int sync=argc>1&&argv[1][0]=='s'; int tc=argc>2?atoi(argv[2]):0, cc=argc>3?atoi(argv[3]):0;
 int sv[2]; socketpair(AF_UNIX,SOCK_STREAM,0,sv);
 pid_t p=fork();
 if(!p){ if(cc>=0)pin(cc); struct sock_filter f[]={BPF_STMT(BPF_LD|BPF_W|BPF_ABS,offsetof(struct seccomp_data,nr)),BPF_JUMP(BPF_JMP|BPF_JEQ|BPF_K,SYS_getppid,0,1),BPF_STMT(BPF_RET|BPF_K,SECCOMP_RET_USER_NOTIF),BPF_STMT(BPF_RET|BPF_K,SECCOMP_RET_ALLOW)};
  struct sock_fprog pr={4,f}; prctl(PR_SET_NO_NEW_PRIVS,1,0,0,0); int fd=syscall(SYS_seccomp,SECCOMP_SET_MODE_FILTER,SECCOMP_FILTER_FLAG_NEW_LISTENER,&pr);
  char cm[CMSG_SPACE(sizeof(int))]; struct msghdr m={0}; char c='x'; struct iovec io={&c,1}; m.msg_iov=&io;m.msg_iovlen=1;m.msg_control=cm;m.msg_controllen=sizeof cm; struct cmsghdr*h=CMSG_FIRSTHDR(&m);h->cmsg_level=SOL_SOCKET;h->cmsg_type=SCM_RIGHTS;h->cmsg_len=CMSG_LEN(sizeof(int));memcpy(CMSG_DATA(h),&fd,sizeof fd);sendmsg(sv[1],&m,0); close(fd);
  for(int i=0;i<N;i++)syscall(SYS_getppid); _exit(0);}
 if(tc>=0)pin(tc);
 char cm[CMSG_SPACE(sizeof(int))]; struct msghdr m={0}; char c; struct iovec io={&c,1}; m.msg_iov=&io;m.msg_iovlen=1;m.msg_control=cm;m.msg_controllen=sizeof cm; recvmsg(sv[0],&m,0); int fd; memcpy(&fd,CMSG_DATA(CMSG_FIRSTHDR(&m)),sizeof fd);
 if(sync && ioctl(fd,SECCOMP_IOCTL_NOTIF_SET_FLAGS,SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)<0)perror("setflags");
 struct seccomp_notif req; struct seccomp_notif_resp resp; struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
 for(int i=0;i<N;i++){memset(&req,0,sizeof req); if(ioctl(fd,SECCOMP_IOCTL_NOTIF_RECV,&req)<0){perror("recv");break;} resp.id=req.id;resp.val=42;resp.error=0;resp.flags=0; ioctl(fd,SECCOMP_IOCTL_NOTIF_SEND,&resp);}
 clock_gettime(CLOCK_MONOTONIC,&b); waitpid(p,0,0); printf("usernotif sync=%d tracer %d tracee %d: %.2f us/call\n",sync,tc,cc,((b.tv_sec-a.tv_sec)*1e9+(b.tv_nsec-a.tv_nsec))/1e3/N);}
