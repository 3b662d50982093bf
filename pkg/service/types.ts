/**
 * The slim Service and EndpointSlice objects the agent keeps (only the fields ClusterIP
 * translation reads), as pkg/k8s/resources.ts produces them from API objects.
 */
import type { ObjectMeta } from '../policy/snapshot.ts';

export interface ServicePort {
  name?: string;
  /** TCP (default), UDP or SCTP. */
  protocol?: string;
  port: number;
  /** A number, a container port name, or absent (= port). */
  targetPort?: number | string;
}

export interface Service {
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    /** ClusterIP (default), NodePort, LoadBalancer, ExternalName. */
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePort[];
    selector?: Record<string, string>;
    /** None (default) or ClientIP. */
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  };
}

export interface EndpointSlicePort {
  name?: string;
  protocol?: string;
  port?: number;
}

export interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
  targetRef?: { kind?: string; namespace?: string; name?: string };
}

export interface EndpointSlice {
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  /** IPv4, IPv6 or FQDN. */
  addressType?: string;
  ports?: EndpointSlicePort[];
  endpoints?: Endpoint[];
}
