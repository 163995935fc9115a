// Cost of the ways a tracer can stat what a tracee names, tracee stopped
// under ptrace, both on CPU 0:
//   fstat of a descriptor: fstatat("/proc/PID/fd/N") against
//   pidfd_getfd + fstat + close;
//   stat of a path: fstatat(AT_FDCWD, host path) against
//   openat2(rootfd, guest path, O_PATH, RESOLVE_IN_ROOT) + fstat + close,
//   and fstatat(dirfd, name) from an O_PATH descriptor of the parent.
// Usage: stat-routes [ROOT [GUEST PATH]] (default: / and
// /usr/lib/x86_64-linux-gnu/libc.so.6)
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <libgen.h>
static double now(void){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e6+a.tv_nsec/1e3;}
int main(int argc,char**argv){
 const char *root = argc > 1 ? argv[1] : "/";
 const char *guest = argc > 2 ? argv[2] : "/usr/lib/x86_64-linux-gnu/libc.so.6";
 char host[4096]; snprintf(host,sizeof host,"%s%s",strcmp(root,"/")?root:"",guest);
 char dirb[4096]; strcpy(dirb,host); char *dir=dirname(dirb); const char *name=strrchr(guest,'/')+1;
 int N=100000; cpu_set_t s; CPU_ZERO(&s);CPU_SET(0,&s);
 pid_t p=fork();
 sched_setaffinity(0,sizeof s,&s);
 if(!p){ int fd=open(host,O_RDONLY); if(fd<0)_exit(1); dup2(fd,3); ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP); pause(); _exit(0);}
 int st; waitpid(p,&st,0);
 char lp[64]; snprintf(lp,64,"/proc/%d/fd/3",p);
 int pidfd=syscall(SYS_pidfd_open,p,0); if(pidfd<0){perror("pidfd_open");return 1;}
 int rootfd=open(root,O_PATH|O_DIRECTORY); int dirfd=open(dir,O_PATH|O_DIRECTORY);
 if(rootfd<0||dirfd<0){perror(root);return 1;}
 struct open_how how={.flags=O_PATH|O_NOFOLLOW,.resolve=RESOLVE_IN_ROOT};
 struct stat sb; double t[6]={0}, a;
 for(int i=0;i<N;i++){
  a=now(); if(fstatat(AT_FDCWD,lp,&sb,0))return 2; t[0]+=now()-a;
  a=now(); int d=syscall(SYS_pidfd_getfd,pidfd,3,0); fstat(d,&sb); close(d); t[1]+=now()-a;
  a=now(); if(fstatat(AT_FDCWD,host,&sb,AT_SYMLINK_NOFOLLOW))return 3; t[2]+=now()-a;
  a=now(); int f=syscall(SYS_openat2,rootfd,guest,&how,sizeof how); if(f<0)return 4; fstat(f,&sb); close(f); t[3]+=now()-a;
  a=now(); if(fstatat(dirfd,name,&sb,AT_SYMLINK_NOFOLLOW))return 5; t[4]+=now()-a;
  a=now(); syscall(SYS_getppid); t[5]+=now()-a;
 }
 const char*nm[]={"fstatat /proc/PID/fd/3","pidfd_getfd+fstat+close","fstatat host path","openat2 IN_ROOT+fstat+close","fstatat(parent O_PATH, name)","getppid"};
 for(int i=0;i<6;i++)printf("%-30s %.2f us\n",nm[i],t[i]/N);
 kill(p,SIGKILL); return 0;}
