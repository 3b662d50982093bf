/**
 * The agent's side of POST /v1/cni: validates the request again (the agent is the
 * authority), runs the command on the endpoint manager and answers in CNI spec form:
 * `{result}` for ADD, `{}` for the other commands, `{error: {code, msg, details}}`.
 *
 * prevResult on ADD (Palisade chained after another plugin) is suppressed: Palisade
 * owns the pod's interface and addresses, so its result replaces the previous one.
 */
import { EndpointError } from '../endpoint/errors.ts';
import type { EndpointManager } from '../endpoint/manager.ts';
import {
  CniError, causeText, CNI_ERR_INVALID_CONFIG, CNI_ERR_NOT_AVAILABLE, PAL_CNI_INTERNAL,
  type CniErrorBody,
} from './errors.ts';
import { podIdentity } from './args.ts';
import { validateRequest, type CniRequest } from './request.ts';
import { buildResult, prevResultAddresses, type CniResult } from './result.ts';
import { SUPPORTED_VERSIONS } from './version.ts';

export interface CniAnswer {
  result?: CniResult | Record<string, unknown>;
  error?: CniErrorBody & { palCode?: string };
}

export interface CniHandlerDeps {
  manager: EndpointManager;
  /** Why the agent cannot serve ADD now (STATUS), or undefined when it can. */
  notReadyReason: () => string | undefined;
}

export async function handleCni(body: unknown, deps: CniHandlerDeps): Promise<CniAnswer> {
  let req: CniRequest;
  try {
    req = validateRequest(body);
  } catch (err) {
    return { error: toBody(err) };
  }
  try {
    return await run(req, deps);
  } catch (err) {
    return { error: toBody(err) };
  }
}

async function run(req: CniRequest, deps: CniHandlerDeps): Promise<CniAnswer> {
  const c = req.config;
  switch (req.command) {
    case 'ADD': {
      const pod = podIdentity(req.args);
      const rec = await deps.manager.add({
        containerId: req.containerId, ifName: req.ifName, netns: req.netns, network: c.name,
        cniVersion: c.cniVersion, mtu: c.mtu,
        pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
      });
      return {
        result: buildResult(c.cniVersion, {
          hostIfName: rec.hostIfName, hostMac: rec.hostMac, podIfName: rec.ifName,
          podMac: rec.podMac, netns: rec.netns, mtu: rec.mtu, ipv4: rec.ipv4, gateway: rec.gateway,
        }),
      };
    }
    case 'DEL':
      await deps.manager.del(req.containerId, req.ifName);
      return {};
    case 'CHECK':
      if (!c.prevResult) throw new CniError(CNI_ERR_INVALID_CONFIG, 'CHECK needs prevResult');
      await deps.manager.check(req.containerId, req.ifName, req.netns, prevResultAddresses(c.prevResult));
      return {};
    case 'GC':
      await deps.manager.gc(c.name, c['cni.dev/valid-attachments'] ?? []);
      return {};
    case 'STATUS': {
      const reason = deps.notReadyReason();
      if (reason) throw new CniError(CNI_ERR_NOT_AVAILABLE, reason);
      return {};
    }
    case 'VERSION':
      return { result: { cniVersion: c.cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] } };
  }
}

function toBody(err: unknown): CniErrorBody & { palCode?: string } {
  if (err instanceof CniError) return err.toJSON();
  if (err instanceof EndpointError) {
    const body: CniErrorBody & { palCode?: string } = { code: err.cniCode, msg: err.message, palCode: err.code };
    if (err.details) body.details = err.details;
    return body;
  }
  return { code: PAL_CNI_INTERNAL, msg: 'internal error', details: causeText(err), palCode: 'PAL_INTERNAL' };
}
