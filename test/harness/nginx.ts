import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./ports.js";
import { stopProcess } from "./redis.js";

const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].find((path) => existsSync(path)) ?? "nginx";

export interface Nginx {
  url: string;
  /** What nginx printed (it logs errors to stderr here). */
  output: string[];
  stop(): Promise<void>;
}

/**
 * Runs Debian's nginx in the foreground with `serverConfig` (an http-context snippet such as the
 * README's) inside a minimal main configuration of its own; everything it writes stays in a
 * temporary directory.
 */
export async function startNginx(serverConfig: string, port: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-nginx-"));
  // nginx started as root runs its workers as nobody, who must read the configuration.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "switchboard.conf"), serverConfig);
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/switchboard.conf;
}
`,
  );
  const child: ChildProcess = spawn(
    NGINX,
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", `daemon off; pid ${dir}/nginx.pid; error_log stderr warn;`],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output: string[] = [];
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor("nginx to listen", async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${output.join("")}`);
    await fetch(`${url}/healthz`);
    return true;
  });
  return {
    url,
    output,
    stop: async () => {
      await stopProcess(child, "SIGQUIT");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
