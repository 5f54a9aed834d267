import { mount } from 'svelte';
import '../theme.css';
import Page from './Dashboard.svelte';

mount(Page, { target: document.getElementById('app')! });
