#!/usr/bin/env python3
"""A minimal CRI client, as kubelet talks to a runtime: the calls the CRI
runtime suite (tests/tests/cri.rs) makes, on the generated CRI v1 stubs of
the PyPI package `container-runtime-interface-api` (`cri_api`).

usage: cri.py SOCKET COMMAND JSON_ARGS
  run-pod     {"name", "uid", "namespace", "ports": [[host, container, "TCP"|"UDP"]...],
               "annotations": {...}}                       -> {"id"}
  pod-status  {"id"}                                        -> {"ip", "netns", "state"}
  start       {"pod", "name", "image", "command": [...], "pod_config": <run-pod args>}
                                                            -> {"id"}
  stop-pod    {"id"}                                        -> {}
  remove-pod  {"id"}                                        -> {}
Prints the answer as JSON; a gRPC error is printed on stderr, exit 1.
"""

import json
import sys

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc as rpc

PROTOCOLS = {"TCP": api.TCP, "UDP": api.UDP, "SCTP": api.SCTP}


def pod_config(a):
    """The PodSandboxConfig kubelet would build for these arguments."""
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=a["name"], uid=a["uid"],
                                        namespace=a.get("namespace", "default"), attempt=0),
        hostname=a["name"],
        log_directory="",
        port_mappings=[api.PortMapping(protocol=PROTOCOLS[p], container_port=c, host_port=h)
                       for h, c, p in a.get("ports", [])],
        labels={"app": a["name"]},
        annotations=a.get("annotations", {}),
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent="",
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=api.POD)),
        ),
    )


def main():
    sock, command, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    channel = grpc.insecure_channel(f"unix://{sock}")
    rt = rpc.RuntimeServiceStub(channel)
    timeout = 60
    if command == "run-pod":
        r = rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_config(args)), timeout=timeout)
        out = {"id": r.pod_sandbox_id}
    elif command == "pod-status":
        r = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=args["id"], verbose=True),
                                timeout=timeout)
        info = json.loads(r.info.get("info", "{}"))
        netns = ""
        for ns in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
            if ns.get("type") == "network":
                netns = ns.get("path", "")
        out = {"ip": r.status.network.ip, "netns": netns,
               "state": api.PodSandboxState.Name(r.status.state)}
    elif command == "start":
        cfg = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=args["name"], attempt=0),
            image=api.ImageSpec(image=args["image"]),
            command=args["command"],
            log_path="",
            linux=api.LinuxContainerConfig(),
        )
        r = rt.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=args["pod"], config=cfg, sandbox_config=pod_config(args["pod_config"])),
            timeout=timeout)
        rt.StartContainer(api.StartContainerRequest(container_id=r.container_id), timeout=timeout)
        out = {"id": r.container_id}
    elif command == "stop-pod":
        rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=args["id"]), timeout=timeout)
        out = {}
    elif command == "remove-pod":
        rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=args["id"]), timeout=timeout)
        out = {}
    else:
        sys.exit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        print(f"{e.code()}: {e.details()}", file=sys.stderr)
        sys.exit(1)
