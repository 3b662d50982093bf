// Command k8s-validate checks rendered manifests with Kubernetes' own code, offline:
// CustomResourceDefinitions go through the API server's CRD validation (structural
// schema, printer columns, list/map extensions), every other object is decoded strictly
// into its typed API struct, so an unknown or misspelt field fails.
//
//	k8s-validate FILE...
//
// Prints one line per object and exits 1 when any object is invalid.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-validate FILE...")
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	if err := apiextv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := apiextensions.AddToScheme(scheme); err != nil {
		panic(err)
	}
	bad := 0
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8s-validate: %v\n", err)
			os.Exit(2)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fmt.Printf("INVALID %s: reading: %v\n", file, err)
				bad++
				break
			}
			if msg := validate(scheme, doc); msg != "" {
				fmt.Println(msg)
				if len(msg) >= 7 && msg[:7] == "INVALID" {
					bad++
				}
			}
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}

func validate(scheme *runtime.Scheme, doc []byte) string {
	var head struct {
		Kind     string
		Metadata struct{ Name string }
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return fmt.Sprintf("INVALID document: %v", err)
	}
	id := fmt.Sprintf("%s/%s", head.Kind, head.Metadata.Name)
	var obj any
	switch head.Kind {
	case "":
		return ""
	case "CustomResourceDefinition":
		crd := &apiextv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return fmt.Sprintf("INVALID %s: %v", id, err)
		}
		apiextv1.SetObjectDefaults_CustomResourceDefinition(crd)
		internal := &apiextensions.CustomResourceDefinition{}
		if err := scheme.Convert(crd, internal, nil); err != nil {
			return fmt.Sprintf("INVALID %s: converting: %v", id, err)
		}
		if errs := validation.ValidateCustomResourceDefinition(context.Background(), internal); len(errs) > 0 {
			return fmt.Sprintf("INVALID %s: %v", id, errs.ToAggregate())
		}
		return "ok " + id
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "ClusterRole":
		obj = &rbacv1.ClusterRole{}
	case "ClusterRoleBinding":
		obj = &rbacv1.ClusterRoleBinding{}
	default:
		return fmt.Sprintf("INVALID %s: kind not known to k8s-validate", id)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Sprintf("INVALID %s: %v", id, err)
	}
	return "ok " + id
}
