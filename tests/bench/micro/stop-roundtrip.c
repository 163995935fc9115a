// Cost of a ptrace syscall stop (PTRACE_SYSCALL on a getppid loop) with the
// tracer and the tracee pinned to given CPUs (-1: unpinned), optionally with
// a PTRACE_GETREGS per stop. Usage: stop-roundtrip TRACERCPU TRACEECPU [regs]
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc,char**argv){int N=100000; int tc=atoi(argv[1]), cc=atoi(argv[2]); int regs=argc>3;
 cpu_set_t s; pid_t p=fork();
 if(!p){ if(cc>=0){CPU_ZERO(&s);CPU_SET(cc,&s);sched_setaffinity(0,sizeof s,&s);} ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP); for(int i=0;i<N;i++)syscall(SYS_getppid); _exit(0);}
 if(tc>=0){CPU_ZERO(&s);CPU_SET(tc,&s);sched_setaffinity(0,sizeof s,&s);}
 int st; waitpid(p,&st,0); struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a); long n=0; struct user_regs_struct r;
 for(;;){ ptrace(PTRACE_SYSCALL,p,0,0); waitpid(p,&st,0); if(WIFEXITED(st))break; n++; if(regs){ptrace(PTRACE_GETREGS,p,0,&r);} }
 clock_gettime(CLOCK_MONOTONIC,&b); printf("tracer cpu %d tracee cpu %d regs %d: %.2f us/stop\n",tc,cc,regs,((b.tv_sec-a.tv_sec)*1e9+(b.tv_nsec-a.tv_nsec))/1e3/n);}
