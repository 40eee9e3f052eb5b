//! How a service is reached: its ClusterIP Service (every named port), a LoadBalancer
//! `<name>-external` beside it when it is exposed, and an Ingress for its `host`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::Object;
use crate::render::ServiceContext;

/// The suffix of the LoadBalancer Service an exposed service gets beside its own.
pub const EXTERNAL_SUFFIX: &str = "-external";

/// The service's Services and Ingress; none for a service with `service = false`.
pub(crate) fn network_objects(context: &ServiceContext<'_>) -> Vec<Object> {
    let service = context.service;
    if !service.service {
        return Vec::new();
    }
    let mut objects = vec![Object::Service(Box::new(cluster_service(context)))];
    if let Some(expose) = service.expose {
        objects.push(Object::Service(Box::new(external_service(context, expose))));
    }
    if let Some(host) = &service.host {
        objects.push(Object::Ingress(Box::new(ingress(context, host))));
    }
    objects
}

/// A ClusterIP Service: the main port on `service_port` (default: its own), every named
/// port on its own number.
fn cluster_service(context: &ServiceContext<'_>) -> Service {
    let service = context.service;
    let mut ports = vec![ServicePort {
        name: Some(service.port_name().to_owned()),
        port: i32::from(service.service_port()),
        target_port: Some(IntOrString::Int(i32::from(service.port))),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }];
    for (name, port) in &service.ports {
        ports.push(ServicePort {
            name: Some(name.clone()),
            port: i32::from(*port),
            target_port: Some(IntOrString::Int(i32::from(*port))),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: context.annotated(context.name.to_string()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(context.selector.clone()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A LoadBalancer on the `expose` port, forwarding to the service's port.
fn external_service(context: &ServiceContext<'_>, expose: u16) -> Service {
    let service = context.service;
    Service {
        metadata: context.annotated(format!("{}{EXTERNAL_SUFFIX}", context.name)),
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            selector: Some(context.selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some(service.port_name().to_owned()),
                port: i32::from(expose),
                target_port: Some(IntOrString::Int(i32::from(service.port))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Every path of `host` to the service's ClusterIP Service.
fn ingress(context: &ServiceContext<'_>, host: &str) -> Ingress {
    Ingress {
        metadata: context.annotated(context.name.to_string()),
        spec: Some(IngressSpec {
            rules: Some(vec![IngressRule {
                host: Some(host.to_owned()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: context.name.to_string(),
                                port: Some(ServiceBackendPort {
                                    number: Some(i32::from(context.service.service_port())),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}
