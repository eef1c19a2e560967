"""Decode Kubernetes protobuf request bodies into the JSON-shaped objects the rest of the server uses.

Since 1.32 the generated typed clients in client-go (and so kubectl's ``create namespace``,
``create deployment``, ``create token``, ``auth can-i``, ...) send built-in kinds as
``application/vnd.kubernetes.protobuf`` even when they accept JSON back. The body is the 4-byte
magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message whose ``raw`` field holds the object
encoded with Kubernetes' gogo-protobuf schema (``generated.proto``), and whose ``typeMeta`` names
its apiVersion and kind (the object itself carries no TypeMeta on the wire).

This module only *reads* that format: responses stay JSON. It has a tiny wire-format reader and a
declarative table of the message types that clients actually send (field number -> JSON name, type
and JSON presence rules). The output is the dict Go's ``encoding/json`` would have produced for the
same typed object, because that is what the same client sends when it speaks JSON:

* gogo always writes non-pointer scalars (even ``""``/``0``/``false``); JSON drops them when the Go
  field is ``omitempty`` and keeps them otherwise, so the table marks non-omitempty fields with ``!``;
* pointer fields (``*``) are on the wire exactly when they are set, and then always appear in JSON,
  zero or not (``automountServiceAccountToken: false`` must survive);
* non-pointer structs are always emitted (``"status": {}``, ``"resources": {}``), a zero
  ``metav1.Time`` as ``null`` (``"creationTimestamp": null``), and empty non-omitempty slices as
  ``null`` (``ClusterRole.rules``);
* ``[]byte`` becomes base64, ``resource.Quantity`` its string, ``IntOrString`` an int or a string.

A field number the table does not know is refused with 415 rather than silently dropped, so a
client never loses data without being told to send JSON instead.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from anywhere.apiserver.errors import StatusError

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# Schema DSL, one message per entry: "N json Type; ..." where
#   json!    the Go field has no `omitempty` (zero values and empty slices are still emitted)
#   -        an embedded struct whose fields are inlined into the parent (`json:",inline"`)
#   *T       a pointer (on the wire, and in JSON, exactly when set)
#   []T      a repeated field;  map[string]T  a map (keys are always strings here)
# Scalar types: string bool int32 int64 bytes double. Special messages with their own JSON form:
# Time MicroTime Quantity IntOrString FieldsV1 ExtraValue. Anything else names an entry below.
# Field numbers, names and Go shapes are from k8s.io/api and k8s.io/apimachinery types.go (1.32).
_SCHEMA_SOURCE: dict[str, str] = {
    # --- k8s.io/apimachinery/pkg/apis/meta/v1
    "ObjectMeta": """1 name string; 2 generateName string; 3 namespace string; 4 selfLink string;
        5 uid string; 6 resourceVersion string; 7 generation int64; 8 creationTimestamp Time;
        9 deletionTimestamp *Time; 10 deletionGracePeriodSeconds *int64; 11 labels map[string]string;
        12 annotations map[string]string; 13 ownerReferences []OwnerReference; 14 finalizers []string;
        17 managedFields []ManagedFieldsEntry""",
    "OwnerReference": """5 apiVersion! string; 1 kind! string; 3 name! string; 4 uid! string;
        6 controller *bool; 7 blockOwnerDeletion *bool""",
    "ManagedFieldsEntry": """1 manager string; 2 operation string; 3 apiVersion string; 4 time *Time;
        6 fieldsType string; 7 fieldsV1 *FieldsV1; 8 subresource string""",
    "LabelSelector": "1 matchLabels map[string]string; 2 matchExpressions []LabelSelectorRequirement",
    "LabelSelectorRequirement": "1 key! string; 2 operator! string; 3 values []string",
    "FieldSelectorRequirement": "1 key! string; 2 operator! string; 3 values []string",
    "Condition": """1 type! string; 2 status! string; 3 observedGeneration int64;
        4 lastTransitionTime! Time; 5 reason! string; 6 message! string""",
    "DeleteOptions": """1 gracePeriodSeconds *int64; 2 preconditions *Preconditions; 3 orphanDependents *bool;
        4 propagationPolicy *string; 5 dryRun []string;
        6 ignoreStoreReadErrorWithClusterBreakingPotential *bool""",
    "Preconditions": "1 uid *string; 2 resourceVersion *string",
    # --- k8s.io/api/core/v1: references and small shared types
    "ObjectReference": """1 kind string; 2 namespace string; 3 name string; 4 uid string; 5 apiVersion string;
        6 resourceVersion string; 7 fieldPath string""",
    "LocalObjectReference": "1 name string",
    "TypedLocalObjectReference": "1 apiGroup! *string; 2 kind! string; 3 name! string",
    "TypedObjectReference": "1 apiGroup! *string; 2 kind! string; 3 name! string; 4 namespace *string",
    "SecretReference": "1 name string; 2 namespace string",
    "KeyToPath": "1 key! string; 2 path! string; 3 mode *int32",
    "ObjectFieldSelector": "1 apiVersion string; 2 fieldPath! string",
    "ResourceFieldSelector": "1 containerName string; 2 resource! string; 3 divisor Quantity",
    # --- volumes (the common sources; others are refused with 415)
    "Volume": "1 name! string; 2 - VolumeSource",
    "VolumeSource": """1 hostPath *HostPathVolumeSource; 2 emptyDir *EmptyDirVolumeSource;
        6 secret *SecretVolumeSource; 7 nfs *NFSVolumeSource;
        10 persistentVolumeClaim *PersistentVolumeClaimVolumeSource; 16 downwardAPI *DownwardAPIVolumeSource;
        19 configMap *ConfigMapVolumeSource; 26 projected *ProjectedVolumeSource; 28 csi *CSIVolumeSource;
        29 ephemeral *EphemeralVolumeSource; 30 image *ImageVolumeSource""",
    "HostPathVolumeSource": "1 path! string; 2 type *string",
    "EmptyDirVolumeSource": "1 medium string; 2 sizeLimit *Quantity",
    "SecretVolumeSource": "1 secretName string; 2 items []KeyToPath; 3 defaultMode *int32; 4 optional *bool",
    "NFSVolumeSource": "1 server! string; 2 path! string; 3 readOnly bool",
    "PersistentVolumeClaimVolumeSource": "1 claimName! string; 2 readOnly bool",
    "DownwardAPIVolumeSource": "1 items []DownwardAPIVolumeFile; 2 defaultMode *int32",
    "DownwardAPIVolumeFile": """1 path! string; 2 fieldRef *ObjectFieldSelector;
        3 resourceFieldRef *ResourceFieldSelector; 4 mode *int32""",
    "DownwardAPIProjection": "1 items []DownwardAPIVolumeFile",
    "ConfigMapVolumeSource": "1 - LocalObjectReference; 2 items []KeyToPath; 3 defaultMode *int32; 4 optional *bool",
    "ProjectedVolumeSource": "1 sources! []VolumeProjection; 2 defaultMode *int32",
    "VolumeProjection": """1 secret *SecretProjection; 2 downwardAPI *DownwardAPIProjection;
        3 configMap *ConfigMapProjection; 4 serviceAccountToken *ServiceAccountTokenProjection;
        5 clusterTrustBundle *ClusterTrustBundleProjection""",
    "SecretProjection": "1 - LocalObjectReference; 2 items []KeyToPath; 4 optional *bool",
    "ConfigMapProjection": "1 - LocalObjectReference; 2 items []KeyToPath; 4 optional *bool",
    "ServiceAccountTokenProjection": "1 audience string; 2 expirationSeconds *int64; 3 path! string",
    "ClusterTrustBundleProjection": """1 name *string; 2 signerName *string; 3 labelSelector *LabelSelector;
        5 optional *bool; 4 path! string""",
    "CSIVolumeSource": """1 driver! string; 2 readOnly *bool; 3 fsType *string;
        4 volumeAttributes map[string]string; 5 nodePublishSecretRef *LocalObjectReference""",
    "EphemeralVolumeSource": "1 volumeClaimTemplate *PersistentVolumeClaimTemplate",
    "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta; 2 spec! PersistentVolumeClaimSpec",
    "PersistentVolumeClaimSpec": """1 accessModes []string; 4 selector *LabelSelector;
        2 resources VolumeResourceRequirements; 3 volumeName string; 5 storageClassName *string;
        6 volumeMode *string; 7 dataSource *TypedLocalObjectReference; 8 dataSourceRef *TypedObjectReference;
        9 volumeAttributesClassName *string""",
    "VolumeResourceRequirements": "1 limits map[string]Quantity; 2 requests map[string]Quantity",
    "ImageVolumeSource": "1 reference string; 2 pullPolicy string",
    # --- containers
    "Container": """1 name! string; 2 image string; 3 command []string; 4 args []string; 5 workingDir string;
        6 ports []ContainerPort; 19 envFrom []EnvFromSource; 7 env []EnvVar; 8 resources ResourceRequirements;
        23 resizePolicy []ContainerResizePolicy; 24 restartPolicy *string; 9 volumeMounts []VolumeMount;
        21 volumeDevices []VolumeDevice; 10 livenessProbe *Probe; 11 readinessProbe *Probe;
        22 startupProbe *Probe; 12 lifecycle *Lifecycle; 13 terminationMessagePath string;
        20 terminationMessagePolicy string; 14 imagePullPolicy string; 15 securityContext *SecurityContext;
        16 stdin bool; 17 stdinOnce bool; 18 tty bool""",
    "EphemeralContainer": "1 - Container; 2 targetContainerName string",
    "ContainerPort": "1 name string; 2 hostPort int32; 3 containerPort! int32; 4 protocol string; 5 hostIP string",
    "EnvVar": "1 name! string; 2 value string; 3 valueFrom *EnvVarSource",
    "EnvVarSource": """1 fieldRef *ObjectFieldSelector; 2 resourceFieldRef *ResourceFieldSelector;
        3 configMapKeyRef *ConfigMapKeySelector; 4 secretKeyRef *SecretKeySelector""",
    "ConfigMapKeySelector": "1 - LocalObjectReference; 2 key! string; 3 optional *bool",
    "SecretKeySelector": "1 - LocalObjectReference; 2 key! string; 3 optional *bool",
    "EnvFromSource": "1 prefix string; 2 configMapRef *ConfigMapEnvSource; 3 secretRef *SecretEnvSource",
    "ConfigMapEnvSource": "1 - LocalObjectReference; 2 optional *bool",
    "SecretEnvSource": "1 - LocalObjectReference; 2 optional *bool",
    "ResourceRequirements": "1 limits map[string]Quantity; 2 requests map[string]Quantity; 3 claims []ResourceClaim",
    "ResourceClaim": "1 name! string; 2 request string",
    "ContainerResizePolicy": "1 resourceName! string; 2 restartPolicy! string",
    "VolumeMount": """1 name! string; 2 readOnly bool; 7 recursiveReadOnly *string; 3 mountPath! string;
        4 subPath string; 5 mountPropagation *string; 6 subPathExpr string""",
    "VolumeDevice": "1 name! string; 2 devicePath! string",
    "Probe": """1 - ProbeHandler; 2 initialDelaySeconds int32; 3 timeoutSeconds int32; 4 periodSeconds int32;
        5 successThreshold int32; 6 failureThreshold int32; 7 terminationGracePeriodSeconds *int64""",
    "ProbeHandler": """1 exec *ExecAction; 2 httpGet *HTTPGetAction; 3 tcpSocket *TCPSocketAction;
        4 grpc *GRPCAction""",
    "Lifecycle": "1 postStart *LifecycleHandler; 2 preStop *LifecycleHandler; 3 stopSignal *string",
    "LifecycleHandler": """1 exec *ExecAction; 2 httpGet *HTTPGetAction; 3 tcpSocket *TCPSocketAction;
        4 sleep *SleepAction""",
    "ExecAction": "1 command []string",
    "HTTPGetAction": "1 path string; 2 port! IntOrString; 3 host string; 4 scheme string; 5 httpHeaders []HTTPHeader",
    "HTTPHeader": "1 name! string; 2 value! string",
    "TCPSocketAction": "1 port! IntOrString; 2 host string",
    "GRPCAction": "1 port! int32; 2 service! *string",
    "SleepAction": "1 seconds! int64",
    "SecurityContext": """1 capabilities *Capabilities; 2 privileged *bool; 3 seLinuxOptions *SELinuxOptions;
        10 windowsOptions *WindowsSecurityContextOptions; 4 runAsUser *int64; 8 runAsGroup *int64;
        5 runAsNonRoot *bool; 6 readOnlyRootFilesystem *bool; 7 allowPrivilegeEscalation *bool;
        9 procMount *string; 11 seccompProfile *SeccompProfile; 12 appArmorProfile *AppArmorProfile""",
    "Capabilities": "1 add []string; 2 drop []string",
    "SELinuxOptions": "1 user string; 2 role string; 3 type string; 4 level string",
    "WindowsSecurityContextOptions": """1 gmsaCredentialSpecName *string; 2 gmsaCredentialSpec *string;
        3 runAsUserName *string; 4 hostProcess *bool""",
    "SeccompProfile": "1 type! string; 2 localhostProfile *string",
    "AppArmorProfile": "1 type! string; 2 localhostProfile *string",
    # --- pods
    "Pod": "1 metadata ObjectMeta; 2 spec PodSpec; 3 status PodStatus",
    "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
    "PodSpec": """1 volumes []Volume; 20 initContainers []Container; 2 containers! []Container;
        34 ephemeralContainers []EphemeralContainer; 3 restartPolicy string;
        4 terminationGracePeriodSeconds *int64; 5 activeDeadlineSeconds *int64; 6 dnsPolicy string;
        7 nodeSelector map[string]string; 8 serviceAccountName string; 9 serviceAccount string;
        21 automountServiceAccountToken *bool; 10 nodeName string; 11 hostNetwork bool; 12 hostPID bool;
        13 hostIPC bool; 27 shareProcessNamespace *bool; 14 securityContext *PodSecurityContext;
        15 imagePullSecrets []LocalObjectReference; 16 hostname string; 17 subdomain string;
        18 affinity *Affinity; 19 schedulerName string; 22 tolerations []Toleration;
        23 hostAliases []HostAlias; 24 priorityClassName string; 25 priority *int32;
        26 dnsConfig *PodDNSConfig; 28 readinessGates []PodReadinessGate; 29 runtimeClassName *string;
        30 enableServiceLinks *bool; 31 preemptionPolicy *string; 32 overhead map[string]Quantity;
        33 topologySpreadConstraints []TopologySpreadConstraint; 35 setHostnameAsFQDN *bool; 36 os *PodOS;
        37 hostUsers *bool; 38 schedulingGates []PodSchedulingGate; 39 resourceClaims []PodResourceClaim;
        40 resources *ResourceRequirements""",
    "PodSecurityContext": """1 seLinuxOptions *SELinuxOptions; 8 windowsOptions *WindowsSecurityContextOptions;
        2 runAsUser *int64; 6 runAsGroup *int64; 3 runAsNonRoot *bool; 4 supplementalGroups []int64;
        12 supplementalGroupsPolicy *string; 5 fsGroup *int64; 7 sysctls []Sysctl;
        9 fsGroupChangePolicy *string; 10 seccompProfile *SeccompProfile; 11 appArmorProfile *AppArmorProfile;
        13 seLinuxChangePolicy *string""",
    "Sysctl": "1 name! string; 2 value! string",
    "Affinity": "1 nodeAffinity *NodeAffinity; 2 podAffinity *PodAffinity; 3 podAntiAffinity *PodAffinity",
    "NodeAffinity": """1 requiredDuringSchedulingIgnoredDuringExecution *NodeSelector;
        2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm""",
    "NodeSelector": "1 nodeSelectorTerms! []NodeSelectorTerm",
    "NodeSelectorTerm": "1 matchExpressions []NodeSelectorRequirement; 2 matchFields []NodeSelectorRequirement",
    "NodeSelectorRequirement": "1 key! string; 2 operator! string; 3 values []string",
    "PreferredSchedulingTerm": "1 weight! int32; 2 preference! NodeSelectorTerm",
    # PodAntiAffinity has exactly PodAffinity's fields and numbers.
    "PodAffinity": """1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;
        2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm""",
    "WeightedPodAffinityTerm": "1 weight! int32; 2 podAffinityTerm! PodAffinityTerm",
    "PodAffinityTerm": """1 labelSelector *LabelSelector; 2 namespaces []string; 3 topologyKey! string;
        4 namespaceSelector *LabelSelector; 5 matchLabelKeys []string; 6 mismatchLabelKeys []string""",
    "Toleration": "1 key string; 2 operator string; 3 value string; 4 effect string; 5 tolerationSeconds *int64",
    "HostAlias": "1 ip! string; 2 hostnames []string",
    "PodDNSConfig": "1 nameservers []string; 2 searches []string; 3 options []PodDNSConfigOption",
    "PodDNSConfigOption": "1 name string; 2 value *string",
    "PodReadinessGate": "1 conditionType! string",
    "TopologySpreadConstraint": """1 maxSkew! int32; 2 topologyKey! string; 3 whenUnsatisfiable! string;
        4 labelSelector *LabelSelector; 5 minDomains *int32; 6 nodeAffinityPolicy *string;
        7 nodeTaintsPolicy *string; 8 matchLabelKeys []string""",
    "PodOS": "1 name! string",
    "PodSchedulingGate": "1 name! string",
    "PodResourceClaim": "1 name! string; 3 resourceClaimName *string; 4 resourceClaimTemplateName *string",
    # Pod status: the scalar parts and conditions (container statuses are never sent by clients
    # that create pods; they are refused with 415 like any other unknown field).
    "PodStatus": """1 phase string; 2 conditions []PodCondition; 3 message string; 4 reason string;
        11 nominatedNodeName string; 5 hostIP string; 16 hostIPs []HostIP; 6 podIP string;
        12 podIPs []PodIP; 7 startTime *Time; 9 qosClass string; 14 resize string""",
    "PodCondition": """1 type! string; 2 status! string; 3 lastProbeTime Time; 4 lastTransitionTime Time;
        5 reason string; 6 message string""",
    "PodIP": "1 ip! string",
    "HostIP": "1 ip! string",
    # --- other core kinds
    "Namespace": "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus",
    "NamespaceSpec": "1 finalizers []string",
    "NamespaceStatus": "1 phase string; 2 conditions []NamespaceCondition",
    "NamespaceCondition": """1 type! string; 2 status! string; 4 lastTransitionTime Time; 5 reason string;
        6 message string""",
    "ConfigMap": """1 metadata ObjectMeta; 4 immutable *bool; 2 data map[string]string;
        3 binaryData map[string]bytes""",
    "Secret": """1 metadata ObjectMeta; 5 immutable *bool; 2 data map[string]bytes;
        4 stringData map[string]string; 3 type string""",
    "ServiceAccount": """1 metadata ObjectMeta; 2 secrets []ObjectReference;
        3 imagePullSecrets []LocalObjectReference; 4 automountServiceAccountToken *bool""",
    "Service": "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus",
    "ServiceSpec": """1 ports []ServicePort; 2 selector map[string]string; 3 clusterIP string;
        18 clusterIPs []string; 4 type string; 5 externalIPs []string; 7 sessionAffinity string;
        8 loadBalancerIP string; 9 loadBalancerSourceRanges []string; 10 externalName string;
        11 externalTrafficPolicy string; 12 healthCheckNodePort int32; 13 publishNotReadyAddresses bool;
        14 sessionAffinityConfig *SessionAffinityConfig; 19 ipFamilies []string; 17 ipFamilyPolicy *string;
        20 allocateLoadBalancerNodePorts *bool; 21 loadBalancerClass *string;
        22 internalTrafficPolicy *string; 23 trafficDistribution *string""",
    "ServicePort": """1 name string; 2 protocol string; 6 appProtocol *string; 3 port! int32;
        4 targetPort IntOrString; 5 nodePort int32""",
    "SessionAffinityConfig": "1 clientIP *ClientIPConfig",
    "ClientIPConfig": "1 timeoutSeconds *int32",
    "ServiceStatus": "1 loadBalancer LoadBalancerStatus; 2 conditions []Condition",
    "LoadBalancerStatus": "1 ingress []LoadBalancerIngress",
    "LoadBalancerIngress": "1 ip string; 2 hostname string; 3 ipMode *string; 4 ports []PortStatus",
    "PortStatus": "1 port! int32; 2 protocol! string; 3 error *string",
    "Endpoints": "1 metadata ObjectMeta; 2 subsets []EndpointSubset",
    "EndpointSubset": """1 addresses []EndpointAddress; 2 notReadyAddresses []EndpointAddress;
        3 ports []EndpointPort""",
    "EndpointAddress": "1 ip! string; 3 hostname string; 4 nodeName *string; 2 targetRef *ObjectReference",
    "EndpointPort": "1 name string; 2 port! int32; 3 protocol string; 4 appProtocol *string",
    "ResourceQuota": "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus",
    "ResourceQuotaSpec": "1 hard map[string]Quantity; 2 scopes []string; 3 scopeSelector *ScopeSelector",
    "ScopeSelector": "1 matchExpressions []ScopedResourceSelectorRequirement",
    "ScopedResourceSelectorRequirement": "1 scopeName! string; 2 operator! string; 3 values []string",
    "ResourceQuotaStatus": "1 hard map[string]Quantity; 2 used map[string]Quantity",
    "Event": """1 metadata! ObjectMeta; 2 involvedObject! ObjectReference; 3 reason string; 4 message string;
        5 source EventSource; 6 firstTimestamp Time; 7 lastTimestamp Time; 8 count int32; 9 type string;
        10 eventTime MicroTime; 11 series *EventSeries; 12 action string; 13 related *ObjectReference;
        14 reportingComponent! string; 15 reportingInstance! string""",
    "EventSource": "1 component string; 2 host string",
    "EventSeries": "1 count int32; 2 lastObservedTime MicroTime",
    # --- k8s.io/api/apps/v1
    "Deployment": "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus",
    "DeploymentSpec": """1 replicas *int32; 2 selector! *LabelSelector; 3 template! PodTemplateSpec;
        4 strategy DeploymentStrategy; 5 minReadySeconds int32; 6 revisionHistoryLimit *int32; 7 paused bool;
        9 progressDeadlineSeconds *int32; 10 podReplacementPolicy *string""",
    "DeploymentStrategy": "1 type string; 2 rollingUpdate *RollingUpdateDeployment",
    "RollingUpdateDeployment": "1 maxUnavailable *IntOrString; 2 maxSurge *IntOrString",
    "DeploymentStatus": """1 observedGeneration int64; 2 replicas int32; 3 updatedReplicas int32;
        7 readyReplicas int32; 4 availableReplicas int32; 5 unavailableReplicas int32;
        9 terminatingReplicas *int32; 6 conditions []DeploymentCondition; 8 collisionCount *int32""",
    "DeploymentCondition": """1 type! string; 2 status! string; 6 lastUpdateTime Time; 7 lastTransitionTime Time;
        4 reason string; 5 message string""",
    "ReplicaSet": "1 metadata ObjectMeta; 2 spec ReplicaSetSpec; 3 status ReplicaSetStatus",
    "ReplicaSetSpec": """1 replicas *int32; 4 minReadySeconds int32; 2 selector! *LabelSelector;
        3 template PodTemplateSpec""",
    "ReplicaSetStatus": """1 replicas! int32; 2 fullyLabeledReplicas int32; 4 readyReplicas int32;
        5 availableReplicas int32; 7 terminatingReplicas *int32; 3 observedGeneration int64;
        6 conditions []ReplicaSetCondition""",
    "ReplicaSetCondition": """1 type! string; 2 status! string; 3 lastTransitionTime Time; 4 reason string;
        5 message string""",
    "DaemonSet": "1 metadata ObjectMeta; 2 spec DaemonSetSpec; 3 status DaemonSetStatus",
    "DaemonSetSpec": """1 selector! *LabelSelector; 2 template! PodTemplateSpec; 3 updateStrategy DaemonSetUpdateStrategy;
        4 minReadySeconds int32; 6 revisionHistoryLimit *int32""",
    "DaemonSetUpdateStrategy": "1 type string; 2 rollingUpdate *RollingUpdateDaemonSet",
    "RollingUpdateDaemonSet": "1 maxUnavailable *IntOrString; 2 maxSurge *IntOrString",
    "DaemonSetStatus": """1 currentNumberScheduled! int32; 2 numberMisscheduled! int32;
        3 desiredNumberScheduled! int32; 4 numberReady! int32; 5 observedGeneration int64;
        6 updatedNumberScheduled int32; 7 numberAvailable int32; 8 numberUnavailable int32;
        9 collisionCount *int32; 10 conditions []DaemonSetCondition""",
    "DaemonSetCondition": """1 type! string; 2 status! string; 3 lastTransitionTime Time; 4 reason string;
        5 message string""",
    # --- k8s.io/api/rbac/v1
    "Role": "1 metadata ObjectMeta; 2 rules! []PolicyRule",
    "ClusterRole": "1 metadata ObjectMeta; 2 rules! []PolicyRule; 3 aggregationRule *AggregationRule",
    "PolicyRule": """1 verbs! []string; 2 apiGroups []string; 3 resources []string; 4 resourceNames []string;
        5 nonResourceURLs []string""",
    "AggregationRule": "1 clusterRoleSelectors []LabelSelector",
    "RoleBinding": "1 metadata ObjectMeta; 2 subjects []Subject; 3 roleRef! RoleRef",
    "ClusterRoleBinding": "1 metadata ObjectMeta; 2 subjects []Subject; 3 roleRef! RoleRef",
    "Subject": "1 kind! string; 2 apiGroup string; 3 name! string; 4 namespace string",
    "RoleRef": "1 apiGroup! string; 2 kind! string; 3 name! string",
    # --- k8s.io/api/coordination/v1
    "Lease": "1 metadata ObjectMeta; 2 spec LeaseSpec",
    "LeaseSpec": """1 holderIdentity *string; 2 leaseDurationSeconds *int32; 3 acquireTime *MicroTime;
        4 renewTime *MicroTime; 5 leaseTransitions *int32""",
    # --- k8s.io/api/authentication/v1 (kubectl create token, kubectl auth whoami)
    "TokenRequest": "1 metadata ObjectMeta; 2 spec! TokenRequestSpec; 3 status TokenRequestStatus",
    "TokenRequestSpec": "1 audiences! []string; 4 expirationSeconds! *int64; 3 boundObjectRef! *BoundObjectReference",
    "BoundObjectReference": "1 kind string; 2 apiVersion string; 3 name string; 4 uid string",
    "TokenRequestStatus": "1 token! string; 2 expirationTimestamp! Time",
    "SelfSubjectReview": "1 metadata ObjectMeta; 2 status SelfSubjectReviewStatus",
    "SelfSubjectReviewStatus": "1 userInfo UserInfo",
    "UserInfo": "1 username string; 2 uid string; 3 groups []string; 4 extra map[string]ExtraValue",
    # --- k8s.io/api/authorization/v1 (kubectl auth can-i)
    "SelfSubjectAccessReview": """1 metadata ObjectMeta; 2 spec! SelfSubjectAccessReviewSpec;
        3 status SubjectAccessReviewStatus""",
    "SelfSubjectAccessReviewSpec": """1 resourceAttributes *ResourceAttributes;
        2 nonResourceAttributes *NonResourceAttributes""",
    "SubjectAccessReview": "1 metadata ObjectMeta; 2 spec! SubjectAccessReviewSpec; 3 status SubjectAccessReviewStatus",
    "SubjectAccessReviewSpec": """1 resourceAttributes *ResourceAttributes; 2 nonResourceAttributes *NonResourceAttributes;
        3 user string; 4 groups []string; 5 extra map[string]ExtraValue; 6 uid string""",
    "ResourceAttributes": """1 namespace string; 2 verb string; 3 group string; 4 version string; 5 resource string;
        6 subresource string; 7 name string; 8 fieldSelector *FieldSelectorAttributes;
        9 labelSelector *LabelSelectorAttributes""",
    "FieldSelectorAttributes": "1 rawSelector string; 2 requirements []FieldSelectorRequirement",
    "LabelSelectorAttributes": "1 rawSelector string; 2 requirements []LabelSelectorRequirement",
    "NonResourceAttributes": "1 path string; 2 verb string",
    "SubjectAccessReviewStatus": "1 allowed! bool; 4 denied bool; 2 reason string; 3 evaluationError string",
    "SelfSubjectRulesReview": """1 metadata ObjectMeta; 2 spec! SelfSubjectRulesReviewSpec;
        3 status SubjectRulesReviewStatus""",
    "SelfSubjectRulesReviewSpec": "1 namespace string",
    "SubjectRulesReviewStatus": """1 resourceRules! []ResourceRule; 2 nonResourceRules! []NonResourceRule;
        3 incomplete! bool; 4 evaluationError string""",
    "ResourceRule": "1 verbs! []string; 2 apiGroups []string; 3 resources []string; 4 resourceNames []string",
    "NonResourceRule": "1 verbs! []string; 2 nonResourceURLs []string",
    # --- k8s.io/api/policy/v1 (kubectl drain, kubectl create poddisruptionbudget)
    "Eviction": "1 metadata ObjectMeta; 2 deleteOptions *DeleteOptions",
    "PodDisruptionBudget": """1 metadata ObjectMeta; 2 spec PodDisruptionBudgetSpec;
        3 status PodDisruptionBudgetStatus""",
    "PodDisruptionBudgetSpec": """1 minAvailable *IntOrString; 2 selector *LabelSelector;
        3 maxUnavailable *IntOrString; 4 unhealthyPodEvictionPolicy *string""",
    "PodDisruptionBudgetStatus": """1 observedGeneration int64; 2 disruptedPods map[string]Time;
        3 disruptionsAllowed! int32; 4 currentHealthy! int32; 5 desiredHealthy! int32; 6 expectedPods! int32;
        7 conditions []Condition""",
    # --- k8s.io/api/batch/v1 (kubectl create job / cronjob)
    "Job": "1 metadata ObjectMeta; 2 spec JobSpec; 3 status JobStatus",
    "JobSpec": """1 parallelism *int32; 2 completions *int32; 3 activeDeadlineSeconds *int64;
        11 podFailurePolicy *PodFailurePolicy; 16 successPolicy *SuccessPolicy; 7 backoffLimit *int32;
        12 backoffLimitPerIndex *int32; 13 maxFailedIndexes *int32; 4 selector *LabelSelector;
        5 manualSelector *bool; 6 template! PodTemplateSpec; 8 ttlSecondsAfterFinished *int32;
        9 completionMode *string; 10 suspend *bool; 14 podReplacementPolicy *string; 15 managedBy *string""",
    "PodFailurePolicy": "1 rules! []PodFailurePolicyRule",
    "PodFailurePolicyRule": """1 action! string; 2 onExitCodes! *PodFailurePolicyOnExitCodesRequirement;
        3 onPodConditions! []PodFailurePolicyOnPodConditionsPattern""",
    "PodFailurePolicyOnExitCodesRequirement": "1 containerName! *string; 2 operator! string; 3 values! []int32",
    "PodFailurePolicyOnPodConditionsPattern": "1 type! string; 2 status! string",
    "SuccessPolicy": "1 rules! []SuccessPolicyRule",
    "SuccessPolicyRule": "1 succeededIndexes *string; 2 succeededCount *int32",
    "JobStatus": """1 conditions []JobCondition; 2 startTime *Time; 3 completionTime *Time; 4 active int32;
        5 succeeded int32; 6 failed int32; 11 terminating *int32; 7 completedIndexes string;
        10 failedIndexes *string; 8 uncountedTerminatedPods *UncountedTerminatedPods; 9 ready *int32""",
    "UncountedTerminatedPods": "1 succeeded []string; 2 failed []string",
    "JobCondition": """1 type! string; 2 status! string; 3 lastProbeTime Time; 4 lastTransitionTime Time;
        5 reason string; 6 message string""",
    "JobTemplateSpec": "1 metadata ObjectMeta; 2 spec JobSpec",
    "CronJob": "1 metadata ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus",
    "CronJobSpec": """1 schedule! string; 8 timeZone *string; 2 startingDeadlineSeconds *int64;
        3 concurrencyPolicy string; 4 suspend *bool; 5 jobTemplate! JobTemplateSpec;
        6 successfulJobsHistoryLimit *int32; 7 failedJobsHistoryLimit *int32""",
    "CronJobStatus": "1 active []ObjectReference; 4 lastScheduleTime *Time; 5 lastSuccessfulTime *Time",
    # --- k8s.io/api/networking/v1 (kubectl create ingress)
    "Ingress": "1 metadata ObjectMeta; 2 spec IngressSpec; 3 status IngressStatus",
    "IngressSpec": """4 ingressClassName *string; 1 defaultBackend *IngressBackend; 2 tls []IngressTLS;
        3 rules []IngressRule""",
    "IngressTLS": "1 hosts []string; 2 secretName string",
    "IngressRule": "1 host string; 2 - IngressRuleValue",
    "IngressRuleValue": "1 http *HTTPIngressRuleValue",
    "HTTPIngressRuleValue": "1 paths! []HTTPIngressPath",
    "HTTPIngressPath": "1 path string; 3 pathType! *string; 2 backend! IngressBackend",
    "IngressBackend": "4 service *IngressServiceBackend; 3 resource *TypedLocalObjectReference",
    "IngressServiceBackend": "1 name! string; 2 port ServiceBackendPort",
    "ServiceBackendPort": "1 name string; 2 number int32",
    "IngressStatus": "1 loadBalancer IngressLoadBalancerStatus",
    "IngressLoadBalancerStatus": "1 ingress []IngressLoadBalancerIngress",
    "IngressLoadBalancerIngress": "1 ip string; 2 hostname string; 4 ports []IngressPortStatus",
    "IngressPortStatus": "1 port! int32; 2 protocol! string; 3 error *string",
    # --- k8s.io/api/scheduling/v1 (kubectl create priorityclass)
    "PriorityClass": """1 metadata ObjectMeta; 2 value! int32; 3 globalDefault bool; 4 description string;
        5 preemptionPolicy *string""",
    # --- k8s.io/api/autoscaling/v1 (kubectl autoscale)
    "HorizontalPodAutoscaler": """1 metadata ObjectMeta; 2 spec HorizontalPodAutoscalerSpec;
        3 status HorizontalPodAutoscalerStatus""",
    "HorizontalPodAutoscalerSpec": """1 scaleTargetRef! CrossVersionObjectReference; 2 minReplicas *int32;
        3 maxReplicas! int32; 4 targetCPUUtilizationPercentage *int32""",
    "CrossVersionObjectReference": "1 kind! string; 2 name! string; 3 apiVersion string",
    "HorizontalPodAutoscalerStatus": """1 observedGeneration *int64; 2 lastScaleTime *Time; 3 currentReplicas! int32;
        4 desiredReplicas! int32; 5 currentCPUUtilizationPercentage *int32""",
    "Scale": "1 metadata ObjectMeta; 2 spec ScaleSpec; 3 status ScaleStatus",
    "ScaleSpec": "1 replicas int32",
    "ScaleStatus": "1 replicas! int32; 2 selector string",
}

# Top-level kinds accepted as protobuf, by (group, kind) -> schema message. DeleteOptions is
# registered in every group version, so any group is accepted for it.
_KINDS: dict[tuple[str, str], str] = {
    ("", "Namespace"): "Namespace",
    ("", "ConfigMap"): "ConfigMap",
    ("", "Secret"): "Secret",
    ("", "ServiceAccount"): "ServiceAccount",
    ("", "Service"): "Service",
    ("", "Endpoints"): "Endpoints",
    ("", "Pod"): "Pod",
    ("", "ResourceQuota"): "ResourceQuota",
    ("", "Event"): "Event",
    ("apps", "Deployment"): "Deployment",
    ("apps", "ReplicaSet"): "ReplicaSet",
    ("apps", "DaemonSet"): "DaemonSet",
    ("rbac.authorization.k8s.io", "Role"): "Role",
    ("rbac.authorization.k8s.io", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("coordination.k8s.io", "Lease"): "Lease",
    ("authentication.k8s.io", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("policy", "Eviction"): "Eviction",
    ("policy", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("batch", "Job"): "Job",
    ("batch", "CronJob"): "CronJob",
    ("networking.k8s.io", "Ingress"): "Ingress",
    ("scheduling.k8s.io", "PriorityClass"): "PriorityClass",
    ("autoscaling", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
    ("autoscaling", "Scale"): "Scale",
}

_SCALARS = frozenset({"string", "bool", "int32", "int64", "bytes", "double"})
_SPECIAL = frozenset({"Time", "MicroTime", "Quantity", "IntOrString", "FieldsV1", "ExtraValue"})

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class _Field:
    number: int
    name: str  # JSON name; "" for an inlined embedded struct
    type: str  # scalar, special or message name
    shape: str  # "one", "list" or "map"
    pointer: bool
    always: bool  # no `omitempty`


def _parse_field(spec: str, message: str) -> _Field:
    parts = spec.split()
    if len(parts) != 3:
        raise ValueError(f"bad field spec {spec!r} in {message}")
    number_text, name, type_text = parts
    always = name.endswith("!")
    name = name.rstrip("!")
    shape = "one"
    if type_text.startswith("[]"):
        shape, type_text = "list", type_text[2:]
    elif type_text.startswith("map[string]"):
        shape, type_text = "map", type_text[len("map[string]") :]
    pointer = type_text.startswith("*")
    type_text = type_text.lstrip("*")
    return _Field(int(number_text), "" if name == "-" else name, type_text, shape, pointer, always)


def _build_schema(source: dict[str, str]) -> dict[str, dict[int, _Field]]:
    schema: dict[str, dict[int, _Field]] = {}
    for message, text in source.items():
        parsed = [_parse_field(spec.strip(), message) for spec in text.split(";") if spec.strip()]
        schema[message] = {f.number: f for f in parsed}
    for message, fields in schema.items():
        for f in fields.values():
            if f.type not in _SCALARS and f.type not in _SPECIAL and f.type not in schema:
                raise ValueError(f"{message}.{f.name}: unknown type {f.type}")
    return schema


_SCHEMA = _build_schema(_SCHEMA_SOURCE)


def supported_kinds() -> list[str]:
    """``group/Kind`` (``Kind`` for the core group) of every kind accepted as protobuf, sorted."""
    return sorted(f"{group}/{kind}" if group else kind for group, kind in _KINDS)


def decode_request(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object a Kubernetes protobuf request body encodes.

    Raises :class:`StatusError` 400 when the body is not a well-formed envelope or message, and 415
    when it holds a kind (or a field of a kind) this table does not cover, telling the client to
    send JSON instead.
    """
    if not body.startswith(MAGIC):
        raise _bad("the body does not start with the Kubernetes protobuf magic number")
    envelope = _fields(memoryview(body)[len(MAGIC) :], "runtime.Unknown")
    api_version = kind = ""
    raw = b""
    encoding = content_type = ""
    for number, wire, value in envelope:
        if number == 1:
            for sub_number, sub_wire, sub_value in _fields(_want_bytes(value, wire, "typeMeta"), "TypeMeta"):
                if sub_number == 1:
                    api_version = _text(sub_value, sub_wire, "apiVersion")
                elif sub_number == 2:
                    kind = _text(sub_value, sub_wire, "kind")
        elif number == 2:
            raw = bytes(_want_bytes(value, wire, "raw"))
        elif number == 3:
            encoding = _text(value, wire, "contentEncoding")
        elif number == 4:
            content_type = _text(value, wire, "contentType")
    if not kind or not api_version:
        raise _bad("the protobuf envelope does not name the object's apiVersion and kind")
    if encoding:
        raise StatusError(
            415, f"protobuf content encoding {encoding!r} is not supported; send the object as JSON"
        )
    if content_type and content_type != CONTENT_TYPE:
        raise StatusError(415, f"protobuf envelope content type {content_type!r} is not supported; send JSON")
    group = api_version.rpartition("/")[0]
    message = "DeleteOptions" if kind == "DeleteOptions" else _KINDS.get((group, kind))
    if message is None:
        raise StatusError(
            415,
            f"protobuf request bodies are accepted only for {', '.join(supported_kinds())}; "
            f"send {api_version}, Kind={kind} as application/json",
        )
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_decode_message(memoryview(raw), message))
    return obj


# --- wire format ---------------------------------------------------------------------------


def _bad(detail: str) -> StatusError:
    return StatusError(400, f"unable to decode the protobuf request body: {detail}")


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _bad("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _bad("varint longer than 10 bytes")


def _fields(data: memoryview, message: str) -> list[tuple[int, int, int | memoryview]]:
    """Every (field number, wire type, value) of one message, in wire order."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _bad(f"field number 0 in {message}")
        value: int | memoryview
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _FIXED64:
            if pos + 8 > len(data):
                raise _bad(f"truncated 64-bit field {number} of {message}")
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == _LEN:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _bad(f"field {number} of {message} runs past the end of the message")
            value, pos = data[pos : pos + length], pos + length
        elif wire == _FIXED32:
            if pos + 4 > len(data):
                raise _bad(f"truncated 32-bit field {number} of {message}")
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise _bad(f"unsupported wire type {wire} for field {number} of {message}")
        out.append((number, wire, value))
    return out


def _want_bytes(value: int | memoryview, wire: int, what: str) -> memoryview:
    if wire != _LEN or not isinstance(value, memoryview):
        raise _bad(f"{what} is not length-delimited")
    return value


def _want_int(value: int | memoryview, wire: int, what: str) -> int:
    if wire != _VARINT or not isinstance(value, int):
        raise _bad(f"{what} is not a varint")
    return value


def _text(value: int | memoryview, wire: int, what: str) -> str:
    # Go does not validate UTF-8 when unmarshalling and its JSON encoder replaces invalid bytes.
    return bytes(_want_bytes(value, wire, what)).decode("utf-8", errors="replace")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- typed decoding -----------------------------------------------------------------------


def _decode_message(data: memoryview, message: str) -> dict[str, Any]:
    schema = _SCHEMA[message]
    singles: dict[int, tuple[int, int | memoryview]] = {}
    lists: dict[int, list[Any]] = {}
    maps: dict[int, dict[str, Any]] = {}
    for number, wire, value in _fields(data, message):
        field = schema.get(number)
        if field is None:
            raise StatusError(
                415,
                f"protobuf field {number} of {message} is not supported by this server; "
                "send the object as application/json",
            )
        where = f"{message}.{field.name or field.type}"
        if field.shape == "one":
            singles[number] = (wire, value)
        elif field.shape == "list":
            items = lists.setdefault(number, [])
            if wire == _LEN and field.type in {"int32", "int64", "bool"}:
                packed = _want_bytes(value, wire, where)
                pos = 0
                while pos < len(packed):
                    item, pos = _varint(packed, pos)
                    items.append(_scalar(field.type, _VARINT, item, where))
            else:
                items.append(_value(field.type, wire, value, where))
        else:
            key, item = _map_entry(field, _want_bytes(value, wire, where), where)
            maps.setdefault(number, {})[key] = item
    out: dict[str, Any] = {}
    for field in schema.values():
        number = field.number
        if field.shape == "list":
            items = lists.get(number, [])
            if items:
                out[field.name] = items
            elif field.always:
                out[field.name] = None  # a nil slice without omitempty encodes as null
        elif field.shape == "map":
            entries = maps.get(number, {})
            if entries:
                out[field.name] = {k: entries[k] for k in sorted(entries)}
            elif field.always:
                out[field.name] = None
        elif not field.name:  # inlined embedded struct
            wire, value = singles.get(number, (_LEN, memoryview(b"")))
            out.update(_decode_message(_want_bytes(value, wire, message), field.type))
        elif number in singles:
            wire, value = singles[number]
            decoded = _value(field.type, wire, value, f"{message}.{field.name}")
            if field.pointer or field.always or field.type not in _SCALARS or decoded != _zero(field.type):
                out[field.name] = decoded
        elif field.pointer:
            if field.always:
                out[field.name] = None  # a nil pointer without omitempty encodes as null
        elif field.type in _SCALARS:
            if field.always:
                out[field.name] = _zero(field.type)
        else:
            # A non-pointer struct is emitted even with omitempty; decode its zero value.
            out[field.name] = _value(field.type, _LEN, memoryview(b""), f"{message}.{field.name}")
    return out


def _zero(type_name: str) -> Any:
    return {"string": "", "bool": False, "int32": 0, "int64": 0, "bytes": "", "double": 0.0}[type_name]


def _value(type_name: str, wire: int, value: int | memoryview, where: str) -> Any:
    if type_name in _SCALARS:
        return _scalar(type_name, wire, value, where)
    data = _want_bytes(value, wire, where)
    if type_name == "Time":
        seconds, _ = _timestamp(data, where)
        return None if seconds is None else _format_time(seconds, 0, where, micro=False)
    if type_name == "MicroTime":
        seconds, nanos = _timestamp(data, where)
        return None if seconds is None else _format_time(seconds, nanos, where, micro=True)
    if type_name == "Quantity":
        text = ""
        for number, sub_wire, sub_value in _fields(data, "Quantity"):
            if number == 1:
                text = _text(sub_value, sub_wire, where)
        return text or "0"
    if type_name == "IntOrString":
        kind, int_val, str_val = 0, 0, ""
        for number, sub_wire, sub_value in _fields(data, "IntOrString"):
            if number == 1:
                kind = _signed(_want_int(sub_value, sub_wire, where), 64)
            elif number == 2:
                int_val = _signed(_want_int(sub_value, sub_wire, where), 32)
            elif number == 3:
                str_val = _text(sub_value, sub_wire, where)
        return str_val if kind == 1 else int_val
    if type_name == "FieldsV1":
        raw = b""
        for number, sub_wire, sub_value in _fields(data, "FieldsV1"):
            if number == 1:
                raw = bytes(_want_bytes(sub_value, sub_wire, where))
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise _bad(f"{where} is not JSON: {err}") from err
    if type_name == "ExtraValue":
        return [_text(v, w, where) for number, w, v in _fields(data, "ExtraValue") if number == 1]
    return _decode_message(data, type_name)


def _scalar(type_name: str, wire: int, value: int | memoryview, where: str) -> Any:
    if type_name == "string":
        return _text(value, wire, where)
    if type_name == "bytes":
        return base64.b64encode(bytes(_want_bytes(value, wire, where))).decode("ascii")
    if type_name == "double":
        if wire != _FIXED64 or not isinstance(value, int):
            raise _bad(f"{where} is not a 64-bit value")
        return struct.unpack("<d", value.to_bytes(8, "little"))[0]
    number = _want_int(value, wire, where)
    if type_name == "bool":
        return number != 0
    return _signed(number, 32 if type_name == "int32" else 64)


def _map_entry(field: _Field, data: memoryview, where: str) -> tuple[str, Any]:
    key = ""
    item: Any = None
    found = False
    for number, wire, value in _fields(data, f"{where} entry"):
        if number == 1:
            key = _text(value, wire, f"{where} key")
        elif number == 2:
            item, found = _value(field.type, wire, value, f"{where}[{key}]"), True
    if not found:  # an entry without a value holds the value type's zero
        item = (
            _zero(field.type) if field.type in _SCALARS else _value(field.type, _LEN, memoryview(b""), where)
        )
    return key, item


def _timestamp(data: memoryview, where: str) -> tuple[int | None, int]:
    """(seconds, nanos) of a Timestamp; seconds is None for the zero time (an empty message)."""
    if not len(data):
        return None, 0
    seconds = nanos = 0
    for number, wire, value in _fields(data, "Timestamp"):
        if number == 1:
            seconds = _signed(_want_int(value, wire, where), 64)
        elif number == 2:
            nanos = _signed(_want_int(value, wire, where), 32)
    return seconds, nanos


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _format_time(seconds: int, nanos: int, where: str, *, micro: bool) -> str:
    """RFC 3339 in UTC, as metav1.Time (seconds) and metav1.MicroTime (microseconds) marshal."""
    try:
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as err:
        raise _bad(f"{where} is out of range") from err
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
