// Cost of the ptrace requests that read and write a stopped tracee's
// registers: the whole set (PTRACE_GETREGS / PTRACE_SETREGS, what nook does
// at every stop) against PTRACE_GET_SYSCALL_INFO and one register at a time
// (PTRACE_PEEKUSER / PTRACE_POKEUSER) and part of the set
// (PTRACE_GETREGSET / PTRACE_SETREGSET of NT_PRSTATUS with a short iovec:
// r15 to orig_rax, 128 bytes, or to rsp, 160 bytes). Tracee stopped at a
// syscall stop, both on CPU 0. Usage: regs-routes
#define _GNU_SOURCE
#include <sched.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <linux/ptrace.h>
#include <linux/elf.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
static double now(void){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e6+a.tv_nsec/1e3;}
int main(void){
 int N=200000; cpu_set_t s; CPU_ZERO(&s);CPU_SET(0,&s);
 pid_t p=fork();
 sched_setaffinity(0,sizeof s,&s);
 if(!p){ ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP); syscall(SYS_getppid); _exit(0);}
 int st; waitpid(p,&st,0);
 ptrace(PTRACE_SETOPTIONS,p,0,PTRACE_O_TRACESYSGOOD);
 ptrace(PTRACE_SYSCALL,p,0,0); waitpid(p,&st,0); // at getppid's entry stop
 struct user_regs_struct r; struct ptrace_syscall_info si; double t[10]={0}, a; struct iovec v128={&r,128}, v160={&r,160};
 ptrace(PTRACE_GETREGS,p,0,&r);
 for(int i=0;i<N;i++){
  a=now(); ptrace(PTRACE_GETREGS,p,0,&r); t[0]+=now()-a;
  a=now(); ptrace(PTRACE_SETREGS,p,0,&r); t[1]+=now()-a;
  a=now(); ptrace(PTRACE_GET_SYSCALL_INFO,p,sizeof si,&si); t[2]+=now()-a;
  a=now(); ptrace(PTRACE_PEEKUSER,p,offsetof(struct user_regs_struct,orig_rax),0); t[3]+=now()-a;
  a=now(); ptrace(PTRACE_POKEUSER,p,offsetof(struct user_regs_struct,orig_rax),r.orig_rax); t[4]+=now()-a;
  a=now(); syscall(SYS_getppid); t[5]+=now()-a;
  a=now(); if(ptrace(PTRACE_SETREGSET,p,NT_PRSTATUS,&v128)){perror("setregset");return 1;} t[6]+=now()-a;
  a=now(); if(ptrace(PTRACE_GETREGSET,p,NT_PRSTATUS,&v160)){perror("getregset");return 1;} t[7]+=now()-a;
  a=now(); if(ptrace(PTRACE_SETREGSET,p,NT_PRSTATUS,&v160)){perror("setregset");return 1;} t[8]+=now()-a;
  a=now(); if(ptrace(PTRACE_GETREGSET,p,NT_PRSTATUS,&v128)){perror("getregset");return 1;} t[9]+=now()-a;
 }
 const char*nm[]={"PTRACE_GETREGS","PTRACE_SETREGS","PTRACE_GET_SYSCALL_INFO","PTRACE_PEEKUSER","PTRACE_POKEUSER","getppid",
  "SETREGSET 128 bytes","GETREGSET 160 bytes","SETREGSET 160 bytes","GETREGSET 128 bytes"};
 for(int i=0;i<10;i++)printf("%-24s %.2f us\n",nm[i],t[i]/N);
 kill(p,SIGKILL); return 0;}
