import { mount } from 'svelte';
import '../theme.css';
import Page from './Teacher.svelte';

mount(Page, { target: document.getElementById('app')! });
