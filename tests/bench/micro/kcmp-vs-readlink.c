// Cost of the two ways a tracer can learn what a tracee's directory fd is:
// readlink("/proc/PID/fd/N") (what fdGuest does at every dirfd-relative
// stop) against kcmp(KCMP_FILE) of the tracee's fd with a duplicate the
// tracer took once with pidfd_getfd (the check a cache would need), plus
// pidfd_getfd + close (a cache fill). Tracee stopped under ptrace, both on
// CPU 0. Usage: kcmp-vs-readlink [DIR to open in the tracee]
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
static double now(void){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e6+a.tv_nsec/1e3;}
int main(int argc,char**argv){
 const char *dir = argc > 1 ? argv[1] : "/usr/lib/x86_64-linux-gnu";
 int N=200000; cpu_set_t s; CPU_ZERO(&s);CPU_SET(0,&s);
 int pipefd[2]; if(pipe(pipefd)) return 1;
 pid_t p=fork();
 sched_setaffinity(0,sizeof s,&s);
 if(!p){ int fd=open(dir,O_RDONLY|O_DIRECTORY); if(fd<0)_exit(1); dup2(fd,3); ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP); pause(); _exit(0);}
 int st; waitpid(p,&st,0);
 char lp[64]; snprintf(lp,64,"/proc/%d/fd/3",p); char out[4096];
 int pidfd=syscall(SYS_pidfd_open,p,0); if(pidfd<0){perror("pidfd_open");return 1;}
 int dup=syscall(SYS_pidfd_getfd,pidfd,3,0); if(dup<0){perror("pidfd_getfd");return 1;}
 pid_t self=getpid();
 long r=syscall(SYS_kcmp,self,p,KCMP_FILE,dup,3); if(r!=0){fprintf(stderr,"kcmp says %ld\n",r);return 1;}
 double t[4]={0}, a;
 for(int i=0;i<N;i++){
  a=now(); readlink(lp,out,sizeof out); t[0]+=now()-a;
  a=now(); syscall(SYS_kcmp,self,p,KCMP_FILE,dup,3); t[1]+=now()-a;
  a=now(); int d=syscall(SYS_pidfd_getfd,pidfd,3,0); close(d); t[2]+=now()-a;
  a=now(); syscall(SYS_getppid); t[3]+=now()-a;
 }
 const char*nm[]={"readlink /proc/PID/fd/3","kcmp KCMP_FILE","pidfd_getfd+close","getppid"};
 for(int i=0;i<4;i++)printf("%-24s %.2f us\n",nm[i],t[i]/N);
 kill(p,SIGKILL); return 0;}
