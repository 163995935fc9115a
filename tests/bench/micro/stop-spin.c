// Cost of a ptrace syscall stop when the tracer polls for the next stop
// (waitpid WNOHANG for up to SPIN µs) before blocking in waitpid: a
// spinning tracer's CPU never goes idle, so a stop on another CPU does not
// have to wake it (on a VM, an IPI to a halted virtual CPU is a VM exit).
// The tracee works WORK µs between its syscalls (getppid, PTRACE_SYSCALL:
// entry and exit stops). Usage: stop-spin TRACERCPU TRACEECPU SPIN_US [WORK_US]
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
static double now(void){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e6+a.tv_nsec/1e3;}
int main(int argc,char**argv){
 if(argc<4){fprintf(stderr,"usage: stop-spin TRACERCPU TRACEECPU SPIN_US [WORK_US]\n");return 2;}
 int N=50000; int tc=atoi(argv[1]), cc=atoi(argv[2]); double spin=atof(argv[3]); double work=argc>4?atof(argv[4]):0;
 cpu_set_t s; pid_t p=fork();
 if(!p){ if(cc>=0){CPU_ZERO(&s);CPU_SET(cc,&s);sched_setaffinity(0,sizeof s,&s);} ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP);
  for(int i=0;i<N;i++){ double t0=now(); while(now()-t0<work); syscall(SYS_getppid);} _exit(0);}
 if(tc>=0){CPU_ZERO(&s);CPU_SET(tc,&s);sched_setaffinity(0,sizeof s,&s);}
 int st; waitpid(p,&st,0); long n=0, spun=0; double a=now();
 for(;;){ ptrace(PTRACE_SYSCALL,p,0,0);
  int got=0;
  if(spin>0){ double t0=now(); do { if(waitpid(p,&st,WNOHANG)==p){got=1;break;} } while(now()-t0<spin); }
  if(got) spun++; else waitpid(p,&st,0);
  if(WIFEXITED(st))break;
  n++; }
 double b=now(); printf("tracer cpu %d tracee cpu %d spin %.0f us work %.0f us: %.2f us/stop (%.2f above the work), %.0f%% caught spinning\n",tc,cc,spin,work,(b-a)/n,(b-a)/n-work/2,100.0*spun/n);}
