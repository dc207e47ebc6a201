/**
 * A few kubelet metrics in the Prometheus text format, with the kubelet's own names:
 * kubelet_running_pods, kubelet_running_containers, kubelet_node_name, kubelet_started_pods_total,
 * process_start_time_seconds, and client-go's rest_client_requests_total.
 */
export interface SimMetrics {
  request(method: string, code: number | 'error'): void;
  podStarted(): void;
  render(gauges: { runningPods: number; runningContainers: number }): string;
}

export function createMetrics(nodeName: string, host: string, startedAt = new Date()): SimMetrics {
  const requests = new Map<string, number>();
  let startedPods = 0;
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  return {
    request(method, code) {
      const key = `${String(code === 'error' ? '<error>' : code)}|${method}`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
    },
    podStarted: () => void startedPods++,
    render({ runningPods, runningContainers }) {
      const out = [
        '# HELP kubelet_node_name [ALPHA] The node\'s name. The count is always 1.',
        '# TYPE kubelet_node_name gauge',
        `kubelet_node_name{node="${esc(nodeName)}"} 1`,
        '# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox',
        '# TYPE kubelet_running_pods gauge',
        `kubelet_running_pods ${runningPods}`,
        '# HELP kubelet_running_containers [ALPHA] Number of containers currently running',
        '# TYPE kubelet_running_containers gauge',
        `kubelet_running_containers{container_state="running"} ${runningContainers}`,
        '# HELP kubelet_started_pods_total [ALPHA] Cumulative number of pods started',
        '# TYPE kubelet_started_pods_total counter',
        `kubelet_started_pods_total ${startedPods}`,
        '# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in seconds.',
        '# TYPE process_start_time_seconds gauge',
        `process_start_time_seconds ${startedAt.getTime() / 1000}`,
        '# HELP rest_client_requests_total [ALPHA] Number of HTTP requests, partitioned by status code, method, and host.',
        '# TYPE rest_client_requests_total counter',
      ];
      for (const [key, n] of [...requests.entries()].sort()) {
        const [code, method] = key.split('|');
        out.push(`rest_client_requests_total{code="${code}",host="${esc(host)}",method="${method}"} ${n}`);
      }
      return out.join('\n') + '\n';
    },
  };
}
