// Cost of the system calls a tracer makes at a stop, each timed separately,
// tracer and tracee on CPU 0. Usage: stop-ops [FILE to fstatat]
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
static double now(){struct timespec a;clock_gettime(CLOCK_MONOTONIC,&a);return a.tv_sec*1e6+a.tv_nsec/1e3;}
char buf[256]; char big[4096];
int main(int argc,char**argv){int N=50000; cpu_set_t s; pid_t p=fork();
 CPU_ZERO(&s);CPU_SET(0,&s);sched_setaffinity(0,sizeof s,&s);
 if(!p){ int fd=open("/usr/lib",O_RDONLY|O_DIRECTORY); ptrace(PTRACE_TRACEME,0,0,0); raise(SIGSTOP); for(int i=0;i<N;i++)syscall(SYS_getppid); _exit(0);}
 int st; waitpid(p,&st,0); long n=0; struct user_regs_struct r; double t[10]={0}; double a,b;
 char lp[64]; snprintf(lp,64,"/proc/%d/fd/3",p); char out[4096]; struct stat sb;
 for(;;){ a=now(); ptrace(PTRACE_SYSCALL,p,0,0); waitpid(p,&st,0); b=now(); t[0]+=b-a; if(WIFEXITED(st))break; n++;
  a=now(); ptrace(PTRACE_GETREGS,p,0,&r); b=now(); t[1]+=b-a; a=now(); ptrace(PTRACE_GETREGS,p,0,&r); b=now(); t[8]+=b-a; a=now(); syscall(SYS_getppid); b=now(); t[9]+=b-a;
  struct iovec l={big,4096-(r.rsp%4096)}, rm={(void*)r.rsp,4096-(r.rsp%4096)};
  a=now(); process_vm_readv(p,&l,1,&rm,1,0); b=now(); t[2]+=b-a;
  struct iovec l2={buf,64}, rm2={(void*)r.rsp,64};
  a=now(); process_vm_readv(p,&l2,1,&rm2,1,0); b=now(); t[3]+=b-a;
  a=now(); readlink(lp,out,sizeof out); b=now(); t[4]+=b-a;
  a=now(); fstatat(AT_FDCWD,(argc > 1 ? argv[1] : "/usr/lib/x86_64-linux-gnu/libc.so.6"),&sb,AT_SYMLINK_NOFOLLOW); b=now(); t[5]+=b-a;
  struct iovec l3={buf,144}, rm3={(void*)(r.rsp-400),144};
  a=now(); process_vm_writev(p,&l3,1,&rm3,1,0); b=now(); t[6]+=b-a;
  a=now(); ptrace(PTRACE_SETREGS,p,0,&r); b=now(); t[7]+=b-a;
 }
 const char*nm[]={"resume+wait","getregs","vmread-page","vmread64","readlink-proc-fd","fstatat-long","vmwrite144","setregs","getregs2","getppid"};
 for(int i=0;i<10;i++)printf("%-18s %.2f us\n",nm[i],t[i]/n);}
